//! A symbolic pickle machine: it runs the opcodes of protocols 0-5 over a stack of
//! *descriptions* of values, never values. It keeps just enough to name what a pickle
//! imports and calls: strings (for `STACK_GLOBAL`), imported globals, and call results,
//! through the memo. Containers, numbers and payloads collapse to `Other`.
//!
//! Semantics follow CPython's `Lib/pickle.py` `_Unpickler`: where CPython would raise,
//! the walk ends as malformed (what ran before the error would have run, so everything
//! seen so far is still reported).

use std::collections::HashMap;
use std::io::Read;
use std::rc::Rc;
use std::time::Instant;

use super::input::{Halt, Input};
use super::opcodes::{self as op, Arg};
use text::{decimal_line, quoted_string, raw_unicode_escape, text_line, valid_scalar_line};

/// Strings longer than this are not kept: no module or attribute name is this long.
const KEEP_STR: usize = 1024;
/// Distinct imports recorded per stream before the walk gives up.
const MAX_DISTINCT_IMPORTS: usize = 4096;
/// Unresolved-import examples kept per stream (all are counted).
const MAX_UNRESOLVED_EXAMPLES: usize = 16;

#[derive(Clone, Debug)]
enum Sym {
    Str(Rc<str>),
    /// An imported global, by index into `Walk::imports`.
    Global(u32),
    /// The result of calling an imported global.
    Called(u32),
    Other,
}

/// How a walk ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum End {
    /// Reached STOP with a value on the stack.
    Stop,
    /// The input ended before STOP; `between_opcodes` when it ended on an opcode
    /// boundary.
    InputEnded {
        between_opcodes: bool,
    },
    /// CPython would raise here.
    Malformed(String),
    /// A stack, memo or byte cap was hit.
    Limit(String),
    Deadline,
    Io(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ImportSite {
    pub(crate) module: Rc<str>,
    pub(crate) name: Rc<str>,
    /// The opcode that imported it (GLOBAL, INST, STACK_GLOBAL).
    pub(crate) via: &'static str,
    pub(crate) count: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CallSite {
    /// Index into `Walk::imports`.
    pub(crate) callable: u32,
    /// REDUCE, NEWOBJ, NEWOBJ_EX, OBJ, INST or BUILD.
    pub(crate) via: &'static str,
    pub(crate) count: u64,
}

#[derive(Debug)]
pub(crate) struct Walk {
    pub(crate) end: End,
    pub(crate) protocol: Option<u8>,
    pub(crate) opcodes: u64,
    /// Bytes consumed, STOP included.
    pub(crate) bytes: u64,
    pub(crate) imports: Vec<ImportSite>,
    pub(crate) calls: Vec<CallSite>,
    /// Why imports could not be named (examples; `unresolved` counts them all).
    pub(crate) unresolved_examples: Vec<String>,
    pub(crate) unresolved: u64,
    /// Calls whose callable is not a named import (examples; `indirect` counts all).
    pub(crate) indirect_examples: Vec<String>,
    pub(crate) indirect: u64,
}

pub(crate) struct WalkLimits {
    pub(crate) max_bytes: u64,
    pub(crate) max_stack: usize,
    pub(crate) max_memo: usize,
    pub(crate) len_hint: Option<u64>,
    pub(crate) deadline: Option<Instant>,
}

/// Why the walk stops, internally: a `Halt` from the input or an `End` from the machine.
enum Stop {
    Halt(Halt),
    End(End),
}

impl From<Halt> for Stop {
    fn from(h: Halt) -> Self {
        Self::Halt(h)
    }
}

fn malformed(message: impl Into<String>) -> Stop {
    Stop::End(End::Malformed(message.into()))
}

struct Machine {
    stack: Vec<Sym>,
    /// Stack heights at each MARK (CPython's metastack).
    marks: Vec<usize>,
    memo: HashMap<u64, Sym>,
    max_stack: usize,
    max_memo: usize,
    import_index: HashMap<(Rc<str>, Rc<str>), u32>,
    call_index: HashMap<(u32, &'static str), usize>,
    walk: Walk,
}

/// Walks one pickle stream, up to and including its STOP.
pub(crate) fn walk<R: Read>(input: R, limits: &WalkLimits) -> Walk {
    let mut input = Input::new(input, limits.max_bytes, limits.len_hint, limits.deadline);
    let mut machine = Machine {
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        max_stack: limits.max_stack,
        max_memo: limits.max_memo,
        import_index: HashMap::new(),
        call_index: HashMap::new(),
        walk: Walk {
            end: End::Stop,
            protocol: None,
            opcodes: 0,
            bytes: 0,
            imports: Vec::new(),
            calls: Vec::new(),
            unresolved_examples: Vec::new(),
            unresolved: 0,
            indirect_examples: Vec::new(),
            indirect: 0,
        },
    };
    let end = loop {
        if machine.walk.opcodes % 1024 == 1023 && limits.deadline.is_some_and(|d| Instant::now() >= d) {
            break End::Deadline;
        }
        let at = input.offset();
        let byte = match input.opcode() {
            Ok(Some(byte)) => byte,
            Ok(None) => {
                break End::InputEnded { between_opcodes: true };
            }
            Err(halt) => break halt_to_end(halt),
        };
        let Some(opcode) = op::lookup(byte) else {
            break End::Malformed(format!("unknown opcode {byte:#04x} at offset {at}"));
        };
        machine.walk.opcodes += 1;
        match machine.step(opcode, &mut input) {
            Ok(true) => break End::Stop,
            Ok(false) => {}
            Err(Stop::Halt(halt)) => break halt_to_end(halt),
            Err(Stop::End(End::Malformed(m))) => {
                break End::Malformed(format!("{} at offset {at}: {m}", opcode.name));
            }
            Err(Stop::End(end)) => break end,
        }
    };
    machine.walk.end = end;
    machine.walk.bytes = input.offset();
    machine.walk
}

fn halt_to_end(halt: Halt) -> End {
    match halt {
        Halt::EndOfInput { between_opcodes } => End::InputEnded { between_opcodes },
        Halt::ByteLimit => End::Limit("pickle byte cap reached".into()),
        Halt::Deadline => End::Deadline,
        Halt::Io(e) => End::Io(e.to_string()),
    }
}

impl Machine {
    /// Runs one opcode; `Ok(true)` on STOP.
    fn step<R: Read>(&mut self, opcode: &op::Opcode, input: &mut Input<R>) -> Result<bool, Stop> {
        match opcode.byte {
            op::STOP => {
                self.pop()?;
                return Ok(true);
            }
            op::PROTO => {
                let proto = input.fixed(1)?;
                let proto = u8::try_from(proto).unwrap_or(u8::MAX);
                if proto > op::HIGHEST_PROTOCOL {
                    return Err(malformed(format!("unsupported protocol {proto}")));
                }
                self.walk.protocol = Some(proto);
            }
            op::FRAME => {
                // Framing only groups opcodes for buffered reads: nothing to simulate.
                input.fixed(8)?;
            }
            op::MARK => {
                if self.marks.len() >= self.max_stack {
                    return Err(Stop::End(End::Limit("too many MARKs".into())));
                }
                self.marks.push(self.stack.len());
            }
            op::POP => {
                if self.stack.len() > self.base() {
                    self.stack.pop();
                } else {
                    self.pop_mark()?;
                }
            }
            op::POP_MARK => {
                self.pop_mark()?;
            }
            op::DUP => {
                let top = self.peek()?.clone();
                self.push(top)?;
            }
            op::GLOBAL | op::INST => {
                let module = text_line(input)?;
                let name = text_line(input)?;
                let (Some(module), Some(name)) = (module, name) else {
                    self.unresolved(format!("{} with a name longer than {KEEP_STR}", opcode.name));
                    if opcode.byte == op::INST {
                        self.pop_mark()?;
                    }
                    return self.push(Sym::Other).map(|()| false);
                };
                let global = self.import(module, name, opcode.name)?;
                if opcode.byte == op::INST {
                    self.pop_mark()?;
                    self.record_call(global, opcode.name);
                    self.push(Sym::Called(global))?;
                } else {
                    self.push(Sym::Global(global))?;
                }
            }
            op::STACK_GLOBAL => {
                let name = self.pop()?;
                let module = self.pop()?;
                match (module, name) {
                    (Sym::Str(module), Sym::Str(name)) => {
                        let global = self.import(module, name, opcode.name)?;
                        self.push(Sym::Global(global))?;
                    }
                    (module, name) => {
                        self.unresolved(format!(
                            "STACK_GLOBAL on {} and {}",
                            describe(&module),
                            describe(&name)
                        ));
                        self.push(Sym::Other)?;
                    }
                }
            }
            op::EXT1 | op::EXT2 | op::EXT4 => {
                let len = if opcode.byte == op::EXT1 {
                    1
                } else if opcode.byte == op::EXT2 {
                    2
                } else {
                    4
                };
                let code = input.fixed(len)?;
                // The copyreg extension registry maps codes to globals at load time:
                // whatever the loading process registered, this analysis cannot know.
                self.unresolved(format!("{} extension code {code}", opcode.name));
                self.push(Sym::Other)?;
            }
            op::REDUCE | op::NEWOBJ => {
                self.pop()?; // args
                let callable = self.pop()?;
                self.call(&callable, opcode.name)?;
            }
            op::NEWOBJ_EX => {
                self.pop()?; // kwargs
                self.pop()?; // args
                let cls = self.pop()?;
                self.call(&cls, opcode.name)?;
            }
            op::OBJ => {
                let items = self.pop_mark()?;
                let Some(cls) = items.into_iter().next() else {
                    return Err(malformed("OBJ without a class"));
                };
                self.call(&cls, opcode.name)?;
            }
            op::BUILD => {
                self.pop()?; // state
                match *self.peek()? {
                    Sym::Global(g) | Sym::Called(g) => self.record_call(g, opcode.name),
                    _ => {}
                }
            }
            op::PUT | op::BINPUT | op::LONG_BINPUT | op::MEMOIZE => {
                let key = match opcode.byte {
                    op::PUT => decimal_line(input)?,
                    op::MEMOIZE => self.memo.len() as u64,
                    _ => input.fixed(if opcode.byte == op::BINPUT { 1 } else { 4 })?,
                };
                let top = self.peek()?.clone();
                if self.memo.len() >= self.max_memo && !self.memo.contains_key(&key) {
                    return Err(Stop::End(End::Limit(format!("memo exceeds {} entries", self.max_memo))));
                }
                self.memo.insert(key, top);
            }
            op::GET | op::BINGET | op::LONG_BINGET => {
                let key = match opcode.byte {
                    op::GET => decimal_line(input)?,
                    op::BINGET => input.fixed(1)?,
                    _ => input.fixed(4)?,
                };
                let Some(value) = self.memo.get(&key).cloned() else {
                    return Err(malformed(format!("memo key {key} was never stored")));
                };
                self.push(value)?;
            }
            _ => self.data_opcode(opcode, input)?,
        }
        Ok(false)
    }

    /// Opcodes that build data: their results only matter as strings (for
    /// STACK_GLOBAL) or as opaque values.
    fn data_opcode<R: Read>(&mut self, opcode: &op::Opcode, input: &mut Input<R>) -> Result<(), Stop> {
        match opcode.byte {
            op::TUPLE | op::LIST | op::FROZENSET => {
                self.pop_mark()?;
                self.push(Sym::Other)?;
            }
            op::DICT => {
                if self.pop_mark()?.len() % 2 != 0 {
                    return Err(malformed("odd number of items"));
                }
                self.push(Sym::Other)?;
            }
            op::APPENDS | op::ADDITEMS | op::SETITEMS => {
                let items = self.pop_mark()?;
                if opcode.byte == op::SETITEMS && items.len() % 2 != 0 {
                    return Err(malformed("odd number of items"));
                }
                self.peek()?;
            }
            op::APPEND => {
                self.pop()?;
                self.peek()?;
            }
            op::SETITEM => {
                self.pop()?;
                self.pop()?;
                self.peek()?;
            }
            op::TUPLE1 | op::TUPLE2 | op::TUPLE3 => {
                for _ in 0..(opcode.byte - op::TUPLE1 + 1) {
                    self.pop()?;
                }
                self.push(Sym::Other)?;
            }
            op::BINPERSID => {
                self.pop()?;
                self.push(Sym::Other)?;
            }
            op::READONLY_BUFFER => {
                self.peek()?;
            }
            op::STRING => {
                let line = input.line(KEEP_STR + 2)?;
                let value = match line {
                    Some(line) => Sym::Str(Rc::from(quoted_string(&line).map_err(malformed)?)),
                    None => Sym::Other,
                };
                self.push(value)?;
            }
            op::UNICODE => {
                let value = match input.line(KEEP_STR * 6)? {
                    Some(line) => match raw_unicode_escape(&line) {
                        Some(text) if text.len() <= KEEP_STR => Sym::Str(Rc::from(text)),
                        Some(_) => Sym::Other,
                        None => return Err(malformed("bad raw-unicode-escape")),
                    },
                    None => Sym::Other,
                };
                self.push(value)?;
            }
            op::INT | op::LONG | op::FLOAT | op::PERSID => {
                let line = input.line(256)?;
                let valid = line.as_deref().is_some_and(|l| valid_scalar_line(opcode.byte, l));
                if !valid {
                    return Err(malformed("bad text argument"));
                }
                self.push(Sym::Other)?;
            }
            _ => match opcode.arg {
                Arg::None | Arg::Fixed(_) => {
                    if let Arg::Fixed(len) = opcode.arg {
                        input.fixed(len)?;
                    }
                    self.push(Sym::Other)?;
                }
                Arg::Counted(width) => {
                    let len = input.fixed(width)?;
                    let signed = matches!(opcode.byte, op::BINSTRING | op::LONG4);
                    if signed && len > u64::from(i32::MAX as u32) {
                        return Err(malformed("negative length"));
                    }
                    let payload = input.payload(len, KEEP_STR)?;
                    let is_text = matches!(
                        opcode.byte,
                        op::BINUNICODE
                            | op::SHORT_BINUNICODE
                            | op::BINUNICODE8
                            | op::BINSTRING
                            | op::SHORT_BINSTRING
                    );
                    let value = match payload {
                        Some(bytes) if is_text => {
                            Sym::Str(Rc::from(String::from_utf8_lossy(&bytes).as_ref()))
                        }
                        _ => Sym::Other,
                    };
                    self.push(value)?;
                }
                Arg::Line | Arg::TwoLines => unreachable_arg(opcode)?,
            },
        }
        Ok(())
    }

    fn base(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    fn push(&mut self, sym: Sym) -> Result<(), Stop> {
        if self.stack.len() >= self.max_stack {
            return Err(Stop::End(End::Limit(format!("stack exceeds {} items", self.max_stack))));
        }
        self.stack.push(sym);
        Ok(())
    }

    fn pop(&mut self) -> Result<Sym, Stop> {
        if self.stack.len() <= self.base() {
            return Err(malformed("stack underflow"));
        }
        self.stack.pop().ok_or_else(|| malformed("stack underflow"))
    }

    fn peek(&self) -> Result<&Sym, Stop> {
        if self.stack.len() <= self.base() {
            return Err(malformed("stack underflow"));
        }
        self.stack.last().ok_or_else(|| malformed("stack underflow"))
    }

    fn pop_mark(&mut self) -> Result<Vec<Sym>, Stop> {
        let Some(mark) = self.marks.pop() else {
            return Err(malformed("no MARK on the stack"));
        };
        Ok(self.stack.split_off(mark.min(self.stack.len())))
    }

    fn import(&mut self, module: Rc<str>, name: Rc<str>, via: &'static str) -> Result<u32, Stop> {
        let key = (module, name);
        if let Some(&index) = self.import_index.get(&key) {
            self.walk.imports[index as usize].count += 1;
            return Ok(index);
        }
        if self.walk.imports.len() >= MAX_DISTINCT_IMPORTS {
            return Err(Stop::End(End::Limit(format!("more than {MAX_DISTINCT_IMPORTS} distinct imports"))));
        }
        let index = u32::try_from(self.walk.imports.len()).unwrap_or(u32::MAX);
        self.walk.imports.push(ImportSite { module: key.0.clone(), name: key.1.clone(), via, count: 1 });
        self.import_index.insert(key, index);
        Ok(index)
    }

    fn record_call(&mut self, callable: u32, via: &'static str) {
        if let Some(&i) = self.call_index.get(&(callable, via)) {
            self.walk.calls[i].count += 1;
            return;
        }
        self.call_index.insert((callable, via), self.walk.calls.len());
        self.walk.calls.push(CallSite { callable, via, count: 1 });
    }

    fn call(&mut self, callable: &Sym, via: &'static str) -> Result<(), Stop> {
        match *callable {
            Sym::Global(g) => {
                self.record_call(g, via);
                self.push(Sym::Called(g))
            }
            ref other => {
                self.walk.indirect += 1;
                if self.walk.indirect_examples.len() < MAX_UNRESOLVED_EXAMPLES {
                    let what = match other {
                        Sym::Called(g) => {
                            let site = &self.walk.imports[*g as usize];
                            format!("the result of {}.{}", site.module, site.name)
                        }
                        other => describe(other).to_owned(),
                    };
                    self.walk.indirect_examples.push(format!("{via} calls {what}"));
                }
                self.push(Sym::Other)
            }
        }
    }

    fn unresolved(&mut self, why: String) {
        self.walk.unresolved += 1;
        if self.walk.unresolved_examples.len() < MAX_UNRESOLVED_EXAMPLES {
            self.walk.unresolved_examples.push(why);
        }
    }
}

fn unreachable_arg(opcode: &op::Opcode) -> Result<(), Stop> {
    Err(malformed(format!("{} has no decoder", opcode.name)))
}

fn describe(sym: &Sym) -> &'static str {
    match sym {
        Sym::Str(_) => "a string",
        Sym::Global(_) => "an imported global",
        Sym::Called(_) => "a call result",
        Sym::Other => "a computed value",
    }
}

mod text;

#[cfg(test)]
mod tests;

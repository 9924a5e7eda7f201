//! A symbolic pickle machine: it runs the opcodes of protocols 0-5 the way CPython
//! 3.11's C unpickler (`_pickle.c`, the one `pickle.load` and `torch.load` use) runs
//! them, over descriptions of values (see [`value`]), never values.
//!
//! The aim is to know exactly which `find_class` calls a `load()` makes: an import
//! happens when its opcode runs, even if the stream fails later; and nothing after the
//! first error runs. So the walker fails exactly where CPython fails, for the same
//! reasons (types, stack and mark rules, memo misses, text syntax), and goes on
//! wherever CPython goes on.
//!
//! Some failures depend on the loader rather than the bytes: the default
//! `encoding='ASCII'` (torch passes `utf-8`), the empty extension registry, the
//! absence of out-of-band buffers, the memory for a huge memo index, or the objects a
//! real `find_class` returns (a call result that is a `str` for `STACK_GLOBAL`). There
//! the walk records a *divergence* (where the default `pickle.Unpickler` with
//! stand-in objects stops) and goes on as the permissive loader would: imports after it
//! are reported too, marked as loader-dependent.

use std::collections::HashMap;
use std::rc::Rc;
use std::time::Instant;

use super::input::{FrameFit, FramingAnomaly, Halt, Input, PickleSource};
use super::opcodes::{self as op};

mod calls;
mod containers;
mod joblib;
mod numbers;
mod scalars;
mod text;
mod value;

use value::{Origin, Value};

/// Strings longer than this are not kept (no name is this long). Memory stays bounded
/// by the input: every kept string was read from it.
pub(crate) const KEEP_STR: usize = 1 << 20;
/// Distinct imports recorded per stream before the walk gives up.
const MAX_DISTINCT_IMPORTS: usize = 4096;
/// Examples kept per stream for unresolved imports and indirect calls (all are counted).
const MAX_EXAMPLES: usize = 16;
/// Memo indices above this make CPython allocate gigabytes (`idx * 2` pointers): it
/// may fail with `MemoryError`, depending on the machine.
const MEMO_INDEX_ALLOCATABLE: u64 = 1 << 26;
/// Opcodes between two deadline checks.
const OPCODES_PER_CLOCK_CHECK: u64 = 1024;

/// How a walk ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum End {
    /// Reached STOP with a value on the stack.
    Stop,
    /// The stream ended before STOP (CPython: "pickle data was truncated", or "Ran out
    /// of input" when it ended between opcodes).
    Truncated,
    /// CPython raises here.
    Malformed(String),
    /// A stack, memo, import, opcode or byte cap was hit.
    Limit(String),
    Deadline,
    Io(String),
}

/// A name as `find_class` received it: UTF-8 bytes, lone surrogates included.
pub(crate) type Name = Rc<[u8]>;

#[derive(Debug, Clone)]
pub(crate) struct ImportSite {
    /// What `find_class` received after CPython's Python 2 renaming (`_compat_pickle`,
    /// applied below protocol 3).
    pub(crate) module: Name,
    pub(crate) name: Name,
    /// As the pickle spelled it, when the renaming changed it.
    pub(crate) written: Option<(Name, Name)>,
    /// The opcode that imported it first (GLOBAL, INST or STACK_GLOBAL).
    pub(crate) via: &'static str,
    pub(crate) count: u64,
    /// Whether it was first imported after a divergence (see the module comment).
    pub(crate) loader_dependent: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CallSite {
    /// Index into `Walk::imports`.
    pub(crate) callable: u32,
    /// REDUCE, NEWOBJ, NEWOBJ_EX, OBJ, INST, BUILD, APPEND(S), SETITEM(S), ADDITEMS, or
    /// ARGUMENT (handed to a call).
    pub(crate) via: &'static str,
    pub(crate) count: u64,
}

/// Where the default unpickler stops and the walk went on as a permissive loader would.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Divergence {
    pub(crate) offset: u64,
    pub(crate) why: String,
}

#[derive(Debug)]
pub(crate) struct Walk {
    pub(crate) end: End,
    /// The last PROTO seen.
    pub(crate) protocol: Option<u8>,
    pub(crate) opcodes: u64,
    /// Bytes consumed, STOP included.
    pub(crate) bytes: u64,
    /// Bytes read rather than seeked over.
    pub(crate) bytes_read: u64,
    /// Where the next stream starts (after STOP, or after the frame STOP was in).
    pub(crate) next_offset: u64,
    pub(crate) imports: Vec<ImportSite>,
    pub(crate) calls: Vec<CallSite>,
    pub(crate) unresolved: u64,
    pub(crate) unresolved_examples: Vec<String>,
    pub(crate) indirect: u64,
    pub(crate) indirect_examples: Vec<String>,
    pub(crate) divergence: Option<Divergence>,
    pub(crate) framing: Option<FramingAnomaly>,
}

impl Walk {
    /// Whether the stream ran anything that could execute code: an import or a call.
    pub(crate) fn ran_code(&self) -> bool {
        !self.imports.is_empty() || self.unresolved > 0 || self.indirect > 0
    }
}

pub(crate) struct WalkLimits {
    pub(crate) max_bytes: u64,
    pub(crate) max_stack: usize,
    pub(crate) max_memo: usize,
    pub(crate) max_opcodes: Option<u64>,
    pub(crate) deadline: Option<Instant>,
    /// Read frames as a buffered (`peek`) reader does: a plain stream.
    pub(crate) linear_frames: bool,
}

/// Why the machine stops, internally: a `Halt` from the input or an `End`.
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

fn limit(message: impl Into<String>) -> Stop {
    Stop::End(End::Limit(message.into()))
}

struct Machine {
    stack: Vec<Value>,
    /// Stack heights at each MARK (CPython's mark stack).
    marks: Vec<usize>,
    /// Shared with the copies that walk joblib's array bytes (copied on their first
    /// write, which is rare): a copy costs nothing per memo entry.
    memo: Rc<HashMap<u64, Value>>,
    max_stack: usize,
    max_memo: usize,
    /// The current PROTO (0 until one is seen), which decides the Python 2 renaming and
    /// dotted-name resolution in `find_class`.
    proto: u8,
    /// Set when a PUT's key could not be read: a GET that misses may be that key.
    memo_uncertain: bool,
    /// Inside a nested `pickle.load` (joblib's object arrays), or a copy walking what
    /// the default unpickler makes of joblib's array bytes: no joblib reading there.
    nested: bool,
    /// joblib's array that follows the wrapper BUILD just finished.
    pending_array: Option<joblib::JoblibArray>,
    /// dtype codes seen in `numpy.dtype(...)` calls (see [`value::Origin::Dtype`]).
    dtype_codes: Vec<Rc<[u8]>>,
    import_index: HashMap<(Name, Name), u32>,
    call_index: HashMap<(u32, &'static str), usize>,
    /// Offset of the opcode being run.
    at: u64,
    walk: Walk,
}

/// Walks one pickle stream, up to and including its STOP.
pub(crate) fn walk<S: PickleSource>(src: S, len: u64, limits: &WalkLimits) -> Walk {
    let mut input = Input::new(src, len, limits.max_bytes, limits.deadline, limits.linear_frames);
    let mut machine = Machine::new(limits);
    let end = machine.run(&mut input, limits);
    machine.walk.bytes = input.offset();
    machine.walk.bytes_read = input.bytes_read();
    machine.walk.next_offset = if end == End::Stop { input.next_stream_offset() } else { input.offset() };
    machine.walk.framing = input.anomaly().cloned();
    machine.walk.end = end;
    machine.walk
}

impl Machine {
    fn new(limits: &WalkLimits) -> Self {
        Self {
            stack: Vec::new(),
            marks: Vec::new(),
            memo: Rc::default(),
            max_stack: limits.max_stack,
            max_memo: limits.max_memo,
            proto: 0,
            memo_uncertain: false,
            nested: false,
            pending_array: None,
            dtype_codes: Vec::new(),
            import_index: HashMap::new(),
            call_index: HashMap::new(),
            at: 0,
            walk: Walk {
                end: End::Stop,
                protocol: None,
                opcodes: 0,
                bytes: 0,
                bytes_read: 0,
                next_offset: 0,
                imports: Vec::new(),
                calls: Vec::new(),
                unresolved: 0,
                unresolved_examples: Vec::new(),
                indirect: 0,
                indirect_examples: Vec::new(),
                divergence: None,
                framing: None,
            },
        }
    }

    fn run<S: PickleSource>(&mut self, input: &mut Input<S>, limits: &WalkLimits) -> End {
        loop {
            if self.walk.opcodes % OPCODES_PER_CLOCK_CHECK == OPCODES_PER_CLOCK_CHECK - 1
                && limits.deadline.is_some_and(|d| Instant::now() >= d)
            {
                return End::Deadline;
            }
            if limits.max_opcodes.is_some_and(|max| self.walk.opcodes >= max) {
                return End::Limit(format!("opcode cap of {} reached", self.walk.opcodes));
            }
            self.at = input.offset();
            let byte = match input.opcode() {
                Ok(Some(byte)) => byte,
                Ok(None) => return End::Truncated,
                Err(halt) => return halt_to_end(halt),
            };
            let Some(opcode) = op::lookup(byte) else {
                return End::Malformed(format!("invalid load key {byte:#04x} at offset {}", self.at));
            };
            self.walk.opcodes += 1;
            let mut result = self.step(opcode, input);
            if let (Ok(false), Some(array)) = (&result, self.pending_array.take()) {
                result = self.joblib_array(array, input, limits).map(|()| false);
            }
            match result {
                Ok(true) => return End::Stop,
                Ok(false) => {}
                Err(Stop::Halt(halt)) => return halt_to_end(halt),
                Err(Stop::End(End::Malformed(m))) => {
                    return End::Malformed(format!("{} at offset {}: {m}", opcode.name, self.at));
                }
                Err(Stop::End(end)) => return end,
            }
        }
    }

    /// Runs one opcode; `Ok(true)` on STOP.
    fn step<S: PickleSource>(&mut self, opcode: &op::Opcode, input: &mut Input<S>) -> Result<bool, Stop> {
        match opcode.byte {
            op::STOP => {
                self.pop()?;
                return Ok(true);
            }
            op::PROTO => {
                let proto = input.fixed(1)?;
                let proto = u8::try_from(proto).unwrap_or(u8::MAX);
                if proto > op::HIGHEST_PROTOCOL {
                    return Err(malformed(format!("unsupported pickle protocol {proto}")));
                }
                self.proto = proto;
                self.walk.protocol = Some(proto);
            }
            op::FRAME => {
                let len = input.fixed(8)?;
                if len > i64::MAX as u64 {
                    return Err(malformed("FRAME length exceeds the maximum size"));
                }
                if input.frame(len)? == FrameFit::Short {
                    self.diverge("a FRAME longer than the data: the C unpickler stops, the pure-Python one runs what is there");
                }
            }
            op::MARK => {
                if self.marks.len() >= self.max_stack {
                    return Err(limit(format!("more than {} MARKs", self.max_stack)));
                }
                self.marks.push(self.stack.len());
            }
            op::POP => self.pop_or_mark()?,
            op::POP_MARK => {
                let mark = self.marker()?;
                self.stack.truncate(mark);
            }
            op::DUP => {
                let top = self.peek()?.clone();
                self.push(top)?;
            }
            op::PUT | op::BINPUT | op::LONG_BINPUT | op::MEMOIZE => self.put(opcode.byte, input)?,
            op::GET | op::BINGET | op::LONG_BINGET => self.get(opcode.byte, input)?,
            op::GLOBAL | op::INST | op::STACK_GLOBAL | op::EXT1 | op::EXT2 | op::EXT4 => {
                self.import_opcode(opcode, input)?;
            }
            op::REDUCE | op::NEWOBJ | op::NEWOBJ_EX | op::OBJ => self.call_opcode(opcode)?,
            op::PERSID | op::BINPERSID => self.persistent(opcode.byte, input)?,
            op::NEXT_BUFFER => {
                self.diverge("the pickle refers to out-of-band buffers, and none are given");
                self.push(Value::Stub(Origin::Buffer))?;
            }
            _ => {
                if !self.container_opcode(opcode)? {
                    self.scalar_opcode(opcode, input)?;
                }
            }
        }
        Ok(false)
    }

    /// The fence: stack items below the top MARK cannot be popped.
    fn fence(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    fn push(&mut self, value: Value) -> Result<(), Stop> {
        if self.stack.len() >= self.max_stack {
            return Err(limit(format!("stack exceeds {} items", self.max_stack)));
        }
        self.stack.push(value);
        Ok(())
    }

    fn pop(&mut self) -> Result<Value, Stop> {
        if self.stack.len() <= self.fence() {
            return Err(malformed("unpickling stack underflow"));
        }
        self.stack.pop().ok_or_else(|| malformed("unpickling stack underflow"))
    }

    fn peek(&self) -> Result<&Value, Stop> {
        if self.stack.len() <= self.fence() {
            return Err(malformed("unpickling stack underflow"));
        }
        self.stack.last().ok_or_else(|| malformed("unpickling stack underflow"))
    }

    /// `marker()`: pops the top MARK, returning the stack height it recorded.
    fn marker(&mut self) -> Result<usize, Stop> {
        self.marks.pop().ok_or_else(|| malformed("could not find MARK"))
    }

    /// POP: a MARK with nothing above it is popped instead of an item.
    fn pop_or_mark(&mut self) -> Result<(), Stop> {
        if self.marks.last() == Some(&self.stack.len()) {
            self.marks.pop();
            return Ok(());
        }
        self.pop().map(drop)
    }

    /// A `GET`/`PUT` key: `None` when the line is too long to parse here (CPython
    /// accepts any amount of surrounding whitespace).
    fn memo_key_text<S: PickleSource>(input: &mut Input<S>, what: &str) -> Result<Option<i64>, Stop> {
        let Some(line) = input.line(KEEP_STR)? else {
            return Ok(None);
        };
        if line.is_empty() {
            return Err(malformed("pickle data was truncated"));
        }
        numbers::memo_key_line(&line).map(Some).ok_or_else(|| malformed(format!("bad {what} argument")))
    }

    fn put<S: PickleSource>(&mut self, opcode: u8, input: &mut Input<S>) -> Result<(), Stop> {
        let key = match opcode {
            op::PUT => {
                let key = Self::memo_key_text(input, "PUT");
                self.peek()?;
                match key? {
                    Some(key) => u64::try_from(key).map_err(|_| malformed("negative PUT argument"))?,
                    None => {
                        self.diverge("a PUT key too long to read");
                        self.unresolved("PUT with a key too long to read: later GETs are unknown".into());
                        self.memo_uncertain = true;
                        return Ok(());
                    }
                }
            }
            op::BINPUT => {
                let key = input.fixed(1)?;
                self.peek()?;
                key
            }
            op::LONG_BINPUT => {
                let key = input.fixed(4)?;
                self.peek()?;
                key
            }
            _ => {
                self.peek()?;
                self.memo.len() as u64
            }
        };
        let value = self.peek()?.clone();
        if key > MEMO_INDEX_ALLOCATABLE {
            self.diverge(format!("memo index {key} makes CPython allocate {} GiB", (key * 16) >> 30));
        }
        if self.memo.len() >= self.max_memo && !self.memo.contains_key(&key) {
            return Err(limit(format!("memo exceeds {} entries", self.max_memo)));
        }
        Rc::make_mut(&mut self.memo).insert(key, value);
        Ok(())
    }

    fn get<S: PickleSource>(&mut self, opcode: u8, input: &mut Input<S>) -> Result<(), Stop> {
        let key = match opcode {
            op::GET => match Self::memo_key_text(input, "GET")? {
                Some(key) => u64::try_from(key)
                    .map_err(|_| malformed(format!("memo value not found at index {key}")))?,
                None => return self.unknown_memo_value("a GET key too long to read"),
            },
            op::BINGET => input.fixed(1)?,
            _ => input.fixed(4)?,
        };
        match self.memo.get(&key).cloned() {
            Some(value) => self.push(value),
            None if self.memo_uncertain => {
                self.unknown_memo_value("a GET of a key an unreadable PUT may have stored")
            }
            None => Err(malformed(format!("memo value not found at index {key}"))),
        }
    }

    /// A memo value the walk cannot know: the loader's, whatever it is.
    fn unknown_memo_value(&mut self, why: &str) -> Result<(), Stop> {
        self.diverge(why);
        self.unresolved(why.to_owned());
        self.push(Value::Stub(Origin::Unresolved))
    }

    fn persistent<S: PickleSource>(&mut self, opcode: u8, input: &mut Input<S>) -> Result<(), Stop> {
        if opcode == op::PERSID {
            let line = input.line(KEEP_STR)?;
            if line.as_ref().is_some_and(|l| !l.is_ascii()) {
                return Err(malformed("persistent IDs in protocol 0 must be ASCII strings"));
            }
        } else if let Value::Tuple(pid) = self.pop()? {
            // torch's persistent_load constructs the storage class it is given.
            for &import in pid.imports.iter() {
                self.record_call(import, "BINPERSID");
            }
        }
        // What `persistent_load` returns is the loader's business (torch: a storage).
        self.push(Value::Stub(Origin::Persistent))
    }

    /// Records where the default unpickler would stop; the walk goes on.
    fn diverge(&mut self, why: impl Into<String>) {
        if self.walk.divergence.is_none() {
            self.walk.divergence = Some(Divergence { offset: self.at, why: why.into() });
        }
    }

    fn unresolved(&mut self, why: String) {
        self.walk.unresolved += 1;
        if self.walk.unresolved_examples.len() < MAX_EXAMPLES {
            self.walk.unresolved_examples.push(why);
        }
    }

    fn name_of(&self, import: u32) -> String {
        self.walk.imports.get(import as usize).map_or_else(String::new, |site| {
            format!("{}.{}", String::from_utf8_lossy(&site.module), String::from_utf8_lossy(&site.name))
        })
    }
}

fn halt_to_end(halt: Halt) -> End {
    match halt {
        Halt::Truncated => End::Truncated,
        Halt::ByteLimit => End::Limit("pickle byte cap reached".into()),
        Halt::Deadline => End::Deadline,
        Halt::Io(e) => End::Io(e.to_string()),
    }
}

#[cfg(test)]
mod tests;

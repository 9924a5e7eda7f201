//! Imports (`find_class`) and calls: what the analysis is for.

use std::rc::Rc;

use super::value::{Origin, Text, Value};
use super::{
    CallSite, ImportSite, KEEP_STR, MAX_DISTINCT_IMPORTS, MAX_EXAMPLES, Machine, Name, Stop, limit, malformed,
};
use crate::pickle::compat;
use crate::pickle::input::{Input, PickleSource};
use crate::pickle::opcodes as op;

impl Machine {
    pub(super) fn import_opcode<S: PickleSource>(
        &mut self,
        opcode: &op::Opcode,
        input: &mut Input<S>,
    ) -> Result<(), Stop> {
        match opcode.byte {
            op::GLOBAL => {
                let (module, name) = self.two_lines(input, false)?;
                let value = match (module, name) {
                    (Some(module), Some(name)) => {
                        Value::Stub(Origin::Import(self.find_class(module, name, opcode.name)?))
                    }
                    _ => self.unresolvable("GLOBAL with a name too long to read"),
                };
                self.push(value)
            }
            op::INST => {
                let Some(mark) = self.marks.pop() else {
                    // The pure-Python unpickler imports first, then fails on the MARK.
                    self.diverge("INST without MARK: the pure-Python unpickler imports before it fails");
                    if let (Some(module), Some(name)) = self.two_lines(input, true)? {
                        self.find_class(module, name, opcode.name)?;
                    }
                    return Err(malformed("could not find MARK"));
                };
                let (module, name) = self.two_lines(input, true)?;
                let origin = match (module, name) {
                    (Some(module), Some(name)) => {
                        Origin::Import(self.find_class(module, name, opcode.name)?)
                    }
                    _ => {
                        self.unresolvable("INST with a name too long to read");
                        Origin::Unresolved
                    }
                };
                let args = self.stack.split_off(mark.min(self.stack.len()));
                self.call(origin, &Value::tuple(&args), opcode.name)
            }
            op::STACK_GLOBAL => self.stack_global(),
            _ => {
                let width = match opcode.byte {
                    op::EXT1 => 1,
                    op::EXT2 => 2,
                    _ => 4,
                };
                let raw = input.fixed(width)?;
                let code =
                    if width == 4 { i64::from(raw as u32 as i32) } else { i64::try_from(raw).unwrap_or(0) };
                if code <= 0 {
                    return Err(malformed("EXT specifies code <= 0"));
                }
                // copyreg's extension registry maps codes to globals at load time: empty
                // by default, but whatever the loading process registered is imported.
                self.diverge(format!("unregistered extension code {code}"));
                self.unresolved(format!("{} extension code {code}", opcode.name));
                self.push(Value::Stub(Origin::Extension))
            }
        }
    }

    /// GLOBAL and INST's two lines: module and name, UTF-8 (GLOBAL) or ASCII (INST).
    /// `None` for a line too long to keep.
    fn two_lines<S: PickleSource>(
        &mut self,
        input: &mut Input<S>,
        ascii: bool,
    ) -> Result<(Option<Name>, Option<Name>), Stop> {
        let module = self.name_line(input, ascii)?;
        let name = self.name_line(input, ascii)?;
        Ok((module, name))
    }

    fn name_line<S: PickleSource>(
        &mut self,
        input: &mut Input<S>,
        ascii: bool,
    ) -> Result<Option<Name>, Stop> {
        let Some(line) = input.line(KEEP_STR)? else {
            return Ok(None);
        };
        if line.is_empty() {
            return Err(malformed("pickle data was truncated"));
        }
        let valid = if ascii { line.is_ascii() } else { std::str::from_utf8(&line).is_ok() };
        if !valid {
            return Err(malformed(if ascii { "name is not ASCII" } else { "name is not UTF-8" }));
        }
        Ok(Some(Rc::from(line)))
    }

    fn unresolvable(&mut self, why: &str) -> Value {
        self.diverge(why);
        self.unresolved(why.to_owned());
        Value::Stub(Origin::Unresolved)
    }

    fn stack_global(&mut self) -> Result<(), Stop> {
        let name = self.pop()?;
        let module = self.pop()?;
        let value = match (&module, &name) {
            (Value::Str(Text::Known(m)), Value::Str(Text::Known(n))) => {
                Value::Stub(Origin::Import(self.find_class(Rc::clone(m), Rc::clone(n), "STACK_GLOBAL")?))
            }
            (Value::Str(_) | Value::Stub(_), Value::Str(_) | Value::Stub(_)) => {
                // A computed name: what the loader's objects are decides what is imported.
                let why = format!("STACK_GLOBAL on {} and {}", module.describe(), name.describe());
                self.diverge(why.clone());
                self.unresolved(why);
                Value::Stub(Origin::Unresolved)
            }
            _ => return Err(malformed("STACK_GLOBAL requires str")),
        };
        self.push(value)
    }

    /// `find_class(module, name)`: renamed as CPython renames Python 2 names below
    /// protocol 3, recorded, and resolved as an attribute path from protocol 4.
    fn find_class(&mut self, module: Name, name: Name, via: &'static str) -> Result<u32, Stop> {
        let (mapped_module, mapped_name) =
            if self.proto < 3 { compat::python3_name(&module, &name) } else { (None, None) };
        let written = (mapped_module.is_some() || mapped_name.is_some())
            .then(|| (Rc::clone(&module), Rc::clone(&name)));
        let module: Name = mapped_module.map_or(module, |m| Rc::from(m.as_bytes()));
        let name: Name = mapped_name.map_or(name, |n| Rc::from(n.as_bytes()));
        let index = self.record_import(Rc::clone(&module), Rc::clone(&name), written, via)?;
        if self.proto >= 4 && name.split(|&b| b == b'.').any(|part| part == b"<locals>") {
            return Err(malformed("Can't get local attribute"));
        }
        Ok(index)
    }

    /// Records an import another walk made (see `joblib::adopt`): loader-dependent if
    /// it was there, or if this walk has diverged.
    pub(super) fn record_import_site(&mut self, site: &ImportSite) -> Result<u32, Stop> {
        let loader_dependent = site.loader_dependent || self.walk.divergence.is_some();
        self.record_import_as(
            Rc::clone(&site.module),
            Rc::clone(&site.name),
            site.written.clone(),
            site.via,
            loader_dependent,
        )
    }

    fn record_import(
        &mut self,
        module: Name,
        name: Name,
        written: Option<(Name, Name)>,
        via: &'static str,
    ) -> Result<u32, Stop> {
        let loader_dependent = self.walk.divergence.is_some();
        self.record_import_as(module, name, written, via, loader_dependent)
    }

    fn record_import_as(
        &mut self,
        module: Name,
        name: Name,
        written: Option<(Name, Name)>,
        via: &'static str,
        loader_dependent: bool,
    ) -> Result<u32, Stop> {
        let key = (module, name);
        if let Some(&index) = self.import_index.get(&key) {
            let site = &mut self.walk.imports[index as usize];
            site.count += 1;
            site.loader_dependent &= loader_dependent;
            return Ok(index);
        }
        if self.walk.imports.len() >= MAX_DISTINCT_IMPORTS {
            return Err(limit(format!("more than {MAX_DISTINCT_IMPORTS} distinct imports")));
        }
        let index = u32::try_from(self.walk.imports.len()).unwrap_or(u32::MAX);
        self.walk.imports.push(ImportSite {
            module: Rc::clone(&key.0),
            name: Rc::clone(&key.1),
            written,
            via,
            count: 1,
            loader_dependent,
        });
        self.import_index.insert(key, index);
        Ok(index)
    }

    pub(super) fn record_call(&mut self, callable: u32, via: &'static str) {
        if let Some(&i) = self.call_index.get(&(callable, via)) {
            self.walk.calls[i].count += 1;
            return;
        }
        self.call_index.insert((callable, via), self.walk.calls.len());
        self.walk.calls.push(CallSite { callable, via, count: 1 });
    }

    /// An opcode that runs code of the object it works on (BUILD, APPENDS...): an
    /// imported global used that way counts as called.
    pub(super) fn touch(&mut self, origin: Origin, via: &'static str) {
        if let Origin::Import(i) = origin {
            self.record_call(i, via);
        }
    }

    pub(super) fn call_opcode(&mut self, opcode: &op::Opcode) -> Result<(), Stop> {
        match opcode.byte {
            op::REDUCE => {
                let args = self.pop()?;
                let callable = self.pop()?;
                self.check_args(&args)?;
                match callable {
                    Value::Stub(origin) => self.call(origin, &args, opcode.name),
                    other => Err(malformed(format!("{} is not callable", other.describe()))),
                }
            }
            op::NEWOBJ | op::NEWOBJ_EX => self.newobj(opcode),
            _ => {
                // OBJ: MARK cls args... OBJ
                let mark = self.marker()?;
                if self.stack.len() < mark + 1 {
                    return Err(malformed("unpickling stack underflow"));
                }
                let args = self.stack.split_off(mark + 1);
                let cls = self.pop()?;
                match cls {
                    Value::Stub(origin) => self.call(origin, &Value::tuple(&args), opcode.name),
                    other => Err(malformed(format!("{} is not callable", other.describe()))),
                }
            }
        }
    }

    fn newobj(&mut self, opcode: &op::Opcode) -> Result<(), Stop> {
        let kwargs = if opcode.byte == op::NEWOBJ_EX { Some(self.pop()?) } else { None };
        let args = self.pop()?;
        let cls = self.pop()?;
        let Value::Stub(origin) = cls else {
            return Err(malformed(format!(
                "{} class argument must be a type, not {}",
                opcode.name,
                cls.describe()
            )));
        };
        self.check_args(&args)?;
        match &kwargs {
            None => {}
            Some(Value::Dict(d)) => {
                if d.non_str_key.get() {
                    return Err(malformed("keywords must be strings"));
                }
                if d.stub_key.get() {
                    self.diverge("keyword arguments named by objects the loader provides");
                }
            }
            Some(Value::Stub(_)) => self.diverge("keyword arguments the loader provides"),
            Some(other) => {
                return Err(malformed(format!(
                    "NEWOBJ_EX kwargs argument must be a dict, not {}",
                    other.describe()
                )));
            }
        }
        self.call(origin, &args, opcode.name)
    }

    /// A call's argument tuple: a tuple, or an object the loader provides. The pure-
    /// Python unpickler (joblib's, PyPy's) calls `f(*args)`, which takes any iterable.
    fn check_args(&mut self, args: &Value) -> Result<(), Stop> {
        match args {
            Value::Tuple(_) => Ok(()),
            Value::Stub(_) => {
                self.diverge("a call whose argument tuple the loader provides");
                Ok(())
            }
            Value::List(_)
            | Value::Dict(_)
            | Value::Set
            | Value::FrozenSet
            | Value::Str(_)
            | Value::Bytes
            | Value::ByteArray(_)
            | Value::View => {
                self.diverge(format!(
                    "arguments in {}: the pure-Python unpickler calls with them",
                    args.describe()
                ));
                Ok(())
            }
            other => Err(malformed(format!("argument list must be a tuple, not {}", other.describe()))),
        }
    }

    /// Calls a stub: an import is called; anything else is an indirect call (of a call
    /// result, a persistent object...). Imports handed over as arguments count as
    /// called too: the callee may call them (`copyreg._reconstructor`, `map`...).
    fn call(&mut self, origin: Origin, args: &Value, via: &'static str) -> Result<(), Stop> {
        match origin {
            Origin::Import(i) => self.record_call(i, via),
            other => self.indirect(other, via),
        }
        if let Value::Tuple(t) = args {
            for &import in t.imports.iter() {
                self.record_call(import, "ARGUMENT");
            }
        }
        if let Some(dtype) = self.dtype_call(origin, args) {
            return self.push(Value::Stub(dtype));
        }
        self.push(Value::Stub(Origin::CallOf(origin.import())))
    }

    fn indirect(&mut self, origin: Origin, via: &'static str) {
        self.walk.indirect += 1;
        if self.walk.indirect_examples.len() < MAX_EXAMPLES {
            let what = match origin {
                Origin::CallOf(Some(i)) => format!("the result of {}", self.name_of(i)),
                Origin::CallOf(None) => "the result of a call".to_owned(),
                Origin::Persistent => "a persistent object".to_owned(),
                Origin::Extension => "an extension-registry object".to_owned(),
                Origin::Buffer => "an out-of-band buffer".to_owned(),
                Origin::Dtype(i, _) => format!("the dtype made by {}", self.name_of(i)),
                Origin::Unresolved | Origin::Import(_) => "an unresolved import".to_owned(),
            };
            self.walk.indirect_examples.push(format!("{via} calls {what}"));
        }
    }
}

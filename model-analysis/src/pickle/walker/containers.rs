//! Opcodes that build or fill containers, and BUILD, with CPython's failure rules:
//! unhashable keys, items added to objects that cannot take them, odd item counts,
//! list indices out of range, state that is not a dict.

use std::cell::Cell;
use std::rc::Rc;

use super::value::{DictState, Origin, Slot, Value};
use super::{Machine, Stop, malformed};
use crate::pickle::opcodes as op;

impl Machine {
    /// Runs `opcode` if it builds or fills a container; `Ok(false)` if it does not.
    pub(super) fn container_opcode(&mut self, opcode: &op::Opcode) -> Result<bool, Stop> {
        match opcode.byte {
            op::EMPTY_TUPLE => self.counted_tuple(0)?,
            op::TUPLE1 => self.counted_tuple(1)?,
            op::TUPLE2 => self.counted_tuple(2)?,
            op::TUPLE3 => self.counted_tuple(3)?,
            op::TUPLE => {
                let mark = self.marker()?;
                self.counted_tuple(self.stack.len() - mark.min(self.stack.len()))?;
            }
            op::EMPTY_LIST => self.push(Value::List(Rc::new(Cell::new(0))))?,
            op::LIST => {
                let mark = self.marker()?;
                let items = self.stack.split_off(mark.min(self.stack.len()));
                self.push(Value::List(Rc::new(Cell::new(items.len() as u64))))?;
            }
            op::EMPTY_DICT => self.push(Value::Dict(Rc::default()))?,
            op::DICT => self.dict()?,
            op::EMPTY_SET => self.push(Value::Set)?,
            op::FROZENSET => {
                let mark = self.marker()?;
                let items = self.stack.split_off(mark.min(self.stack.len()));
                if !items.iter().all(Value::hashable) {
                    return Err(malformed("unhashable item in a frozenset"));
                }
                self.push(Value::FrozenSet)?;
            }
            op::APPEND => {
                let x = self.stack.len().checked_sub(1).filter(|&x| x > self.fence());
                let x = x.ok_or_else(|| malformed("unpickling stack underflow"))?;
                self.append_items(x, opcode.name)?;
            }
            op::APPENDS => {
                let mark = self.marker()?;
                self.append_items(mark, opcode.name)?;
            }
            op::SETITEM => {
                let x = self.stack.len().saturating_sub(2);
                self.set_items(x, opcode.name)?;
            }
            op::SETITEMS => {
                let mark = self.marker()?;
                self.set_items(mark, opcode.name)?;
            }
            op::ADDITEMS => self.add_items()?,
            op::BUILD => self.build()?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// `load_counted_tuple`: the top `len` items become a tuple.
    fn counted_tuple(&mut self, len: usize) -> Result<(), Stop> {
        if self.stack.len() < len {
            return Err(malformed("unpickling stack underflow"));
        }
        let start = self.stack.len() - len;
        if start < self.fence() {
            return Err(malformed("unpickling stack underflow"));
        }
        let items = self.stack.split_off(start);
        self.push(Value::tuple(&items))
    }

    fn dict(&mut self) -> Result<(), Stop> {
        let mark = self.marker()?;
        let items = self.stack.split_off(mark.min(self.stack.len()));
        if !items.len().is_multiple_of(2) {
            return Err(malformed("odd number of items for DICT"));
        }
        let state = Rc::new(DictState::default());
        for pair in items.chunks(2) {
            dict_set(&state, &pair[0], &pair[1])?;
        }
        self.push(Value::Dict(state))
    }

    /// `do_append`: the items above `x` go into the object at `x - 1`.
    fn append_items(&mut self, x: usize, via: &'static str) -> Result<(), Stop> {
        let len = self.stack.len();
        if x > len || x <= self.fence() {
            return Err(malformed("unpickling stack underflow"));
        }
        if len == x {
            return Ok(());
        }
        let n = (len - x) as u64;
        match self.stack[x - 1].clone() {
            Value::List(list) => list.set(list.get().saturating_add(n)),
            Value::ByteArray(bytes) => {
                // bytearray.extend: every item must be an int in range(256).
                let bytes_ok: Vec<Option<bool>> = self.stack[x..].iter().map(Value::byte_value).collect();
                if bytes_ok.contains(&Some(false)) {
                    return Err(malformed("bytearray items must be ints in range(256)"));
                }
                if bytes_ok.contains(&None) {
                    self.diverge("an object the loader provides appended to a bytearray");
                }
                bytes.set(bytes.get().saturating_add(n));
            }
            Value::Stub(origin) => self.touch(origin, via),
            other => return Err(malformed(format!("{} has no extend or append", other.describe()))),
        }
        self.stack.truncate(x);
        Ok(())
    }

    /// `do_setitems`: the key/value pairs above `x` go into the object at `x - 1`.
    fn set_items(&mut self, x: usize, via: &'static str) -> Result<(), Stop> {
        let len = self.stack.len();
        if x > len || x <= self.fence() {
            return Err(malformed("unpickling stack underflow"));
        }
        if len == x {
            return Ok(());
        }
        if !(len - x).is_multiple_of(2) {
            // The pure-Python unpickler stores the pairs before it fails.
            if let Value::Stub(origin) = self.stack[x - 1] {
                self.touch(origin, via);
            }
            return Err(malformed("odd number of items for SETITEMS"));
        }
        let target = self.stack[x - 1].clone();
        let pairs: Vec<(Value, Value)> =
            self.stack[x..].chunks(2).map(|p| (p[0].clone(), p[1].clone())).collect();
        for (key, value) in &pairs {
            self.set_item(&target, key, value, via)?;
        }
        self.stack.truncate(x);
        Ok(())
    }

    fn set_item(
        &mut self,
        target: &Value,
        key: &Value,
        value: &Value,
        via: &'static str,
    ) -> Result<(), Stop> {
        match target {
            Value::Dict(state) => dict_set(state, key, value),
            Value::Stub(origin) => {
                self.touch(*origin, via);
                Ok(())
            }
            Value::List(len) => self.check_index(key, len.get()),
            Value::ByteArray(len) => {
                self.check_index(key, len.get())?;
                match value.byte_value() {
                    Some(true) => Ok(()),
                    Some(false) => Err(malformed("a bytearray item must be an int in range(256)")),
                    None => {
                        self.diverge("an object the loader provides stored in a bytearray");
                        Ok(())
                    }
                }
            }
            other => Err(malformed(format!("{} does not support item assignment", other.describe()))),
        }
    }

    /// `sequence[key] = ...`: an int index within the sequence.
    fn check_index(&mut self, key: &Value, len: u64) -> Result<(), Stop> {
        if key.is_stub() {
            self.diverge("an object the loader provides used as a list index");
            return Ok(());
        }
        let index = key
            .index()
            .ok_or_else(|| malformed(format!("indices must be integers, not {}", key.describe())))?;
        let len = i64::try_from(len).unwrap_or(i64::MAX);
        if (-len..len).contains(&index) { Ok(()) } else { Err(malformed("assignment index out of range")) }
    }

    fn add_items(&mut self) -> Result<(), Stop> {
        let mark = self.marker()?;
        let len = self.stack.len();
        if mark > len || mark <= self.fence() {
            return Err(malformed("unpickling stack underflow"));
        }
        if len == mark {
            return Ok(());
        }
        match self.stack[mark - 1].clone() {
            Value::Set => {
                if !self.stack[mark..].iter().all(Value::hashable) {
                    return Err(malformed("unhashable item added to a set"));
                }
            }
            Value::Stub(origin) => self.touch(origin, "ADDITEMS"),
            other => return Err(malformed(format!("{} has no add", other.describe()))),
        }
        self.stack.truncate(mark);
        Ok(())
    }

    /// `load_build`: `inst.__setstate__(state)`, or the default state handling.
    fn build(&mut self) -> Result<(), Stop> {
        if self.stack.len() < self.fence() + 2 {
            return Err(malformed("unpickling stack underflow"));
        }
        let state = self.pop()?;
        match self.peek()?.clone() {
            Value::Stub(origin) => {
                // Calls the object's __setstate__: its class's code runs.
                self.touch(origin, "BUILD");
                if let Origin::CallOf(Some(callee)) = origin {
                    self.record_call(callee, "BUILD");
                    self.note_joblib_wrapper(callee, &state);
                }
                Ok(())
            }
            _ => self.default_setstate(&state),
        }
    }

    /// BUILD on a plain object (no `__setstate__`, no `__dict__`). The C unpickler
    /// only takes `None` or `(None, {})`; the pure-Python one (joblib's, PyPy's) skips
    /// any false state (`if state:`), so where only C fails the walk goes on.
    fn default_setstate(&mut self, state: &Value) -> Result<(), Stop> {
        let (first, slots) = match state {
            Value::Tuple(t) if t.len == 2 => match t.pair.clone() {
                Some((first, slots)) => (first, Some(slots)),
                None => (state.slot(), None),
            },
            other => (other.slot(), None),
        };
        match c_setstate(&first, slots.as_ref()) {
            Ok(false) => Ok(()),
            Ok(true) => {
                self.diverge("BUILD with state the loader provides");
                Ok(())
            }
            Err(why) => {
                let python_may_pass =
                    first.falsy() != Some(false) && slots.as_ref().is_none_or(|s| s.falsy() != Some(false));
                if python_may_pass {
                    self.diverge(format!(
                        "BUILD: {why} for the C unpickler; the pure-Python one skips a false state"
                    ));
                    Ok(())
                } else {
                    Err(malformed(why))
                }
            }
        }
    }
}

/// `load_build`'s default state handling in C: `Ok(true)` when it depends on what a
/// stub really is.
fn c_setstate(first: &Slot, slots: Option<&Slot>) -> Result<bool, &'static str> {
    let mut unknown = false;
    match first {
        Slot::None => {}
        Slot::Stub => unknown = true,
        Slot::Dict(_) => return Err("the object has no __dict__ for its state"),
        Slot::Other { .. } => return Err("state is not a dictionary"),
    }
    match slots {
        None => {}
        Some(Slot::Dict(d)) if !d.non_empty.get() => {}
        Some(Slot::Dict(_)) => return Err("the object's attributes cannot be set"),
        Some(Slot::Stub) => unknown = true,
        Some(Slot::None | Slot::Other { .. }) => return Err("slot state is not a dictionary"),
    }
    Ok(unknown)
}

/// `dict[key] = ...`: the key must be hashable.
fn dict_set(state: &DictState, key: &Value, value: &Value) -> Result<(), Stop> {
    if !key.hashable() {
        return Err(malformed(format!("unhashable type: {}", key.describe())));
    }
    state.non_empty.set(true);
    state.remember(key, value);
    match key {
        Value::Str(_) => {}
        Value::Stub(_) => state.stub_key.set(true),
        _ => state.non_str_key.set(true),
    }
    Ok(())
}

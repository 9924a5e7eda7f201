//! joblib's arrays. `joblib.dump` writes each NumPy array as a
//! `joblib.numpy_pickle.NumpyArrayWrapper` object followed, inside the pickle stream,
//! by the array's raw bytes (after a padding byte and padding when the state has
//! `numpy_array_alignment_bytes`), or by a nested pickle for arrays of objects.
//! `joblib.load` reads those bytes when BUILD finishes the wrapper; `pickle.load`
//! reads them as opcodes.
//!
//! So both readings are walked: the bytes as opcodes, as far as they go (what
//! `pickle.load` of the file would run), and the joblib reading, which skips the array
//! (or walks its nested pickle) and goes on with the rest of the stream, as a
//! divergence (what only `joblib.load` reaches).

use std::collections::HashMap;
use std::rc::Rc;

use super::value::{Origin, Summary, Value};
use super::{End, KEEP_STR, Machine, Stop, Walk, WalkLimits, malformed};
use crate::pickle::input::{Input, PickleSource, ReadMode, Streamed};
use crate::pickle::opcodes as op;

/// How far the bytes after a wrapper are read as opcodes.
const PEEK: usize = 64 * 1024;

/// The array that follows a wrapper, from its state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum JoblibArray {
    /// Raw bytes: a padding byte and padding first when aligned.
    Raw { bytes: u64, aligned: bool },
    /// A nested pickle (`pickle.dump(array)` of an object array).
    Objects,
    /// A state this analysis cannot size.
    Unsizable(&'static str),
}

/// A dtype code's item size (`f4`, `<i8`, `U3`, `V16`, `M8[ns]`...).
fn itemsize(code: &[u8]) -> Option<Option<u64>> {
    let code = code.strip_prefix(b"<").or_else(|| code.strip_prefix(b">")).unwrap_or(code);
    let code = code.strip_prefix(b"|").or_else(|| code.strip_prefix(b"=")).unwrap_or(code);
    let (&kind, rest) = code.split_first()?;
    let digits = rest.split(|&b| b == b'[').next().unwrap_or(rest);
    let n: Option<u64> = std::str::from_utf8(digits).ok().and_then(|d| d.parse().ok());
    match kind {
        b'O' => Some(None),
        b'?' => Some(Some(1)),
        b'U' => n.map(|n| Some(n * 4)),
        b'b' | b'i' | b'u' | b'f' | b'c' | b'S' | b'a' | b'V' | b'M' | b'm' => n.filter(|&n| n > 0).map(Some),
        _ => None,
    }
}

impl Machine {
    fn import_is(&self, import: u32, module: &str, name: &str) -> bool {
        self.walk
            .imports
            .get(import as usize)
            .is_some_and(|site| &*site.module == module.as_bytes() && &*site.name == name.as_bytes())
    }

    /// `numpy.dtype(code, ...)`: remembers the code for sizing joblib arrays.
    pub(super) fn dtype_call(&mut self, origin: Origin, args: &Value) -> Option<Origin> {
        let Origin::Import(import) = origin else {
            return None;
        };
        if !self.import_is(import, "numpy", "dtype") {
            return None;
        }
        let Value::Tuple(t) = args else {
            return None;
        };
        let code = t.first_str.clone()?;
        let index = u32::try_from(self.dtype_codes.len()).ok()?;
        if self.dtype_codes.len() >= 4096 {
            return None;
        }
        self.dtype_codes.push(code);
        Some(Origin::Dtype(import, index))
    }

    /// BUILD finished an object: if it is joblib's array wrapper, the array follows.
    pub(super) fn note_joblib_wrapper(&mut self, callee: u32, state: &Value) {
        if self.nested || !self.import_is(callee, "joblib.numpy_pickle", "NumpyArrayWrapper") {
            return;
        }
        let Value::Dict(state) = state else {
            self.pending_array = Some(JoblibArray::Unsizable("its state is not a dict"));
            return;
        };
        let shape = match state.get(b"shape") {
            Some(Summary::Ints(shape)) => shape,
            _ => return self.pending_array = Some(JoblibArray::Unsizable("no shape")),
        };
        let code = match state.get(b"dtype") {
            Some(Summary::Dtype(i)) => self.dtype_codes.get(i as usize).cloned(),
            _ => None,
        };
        let Some(size) = code.and_then(|c| itemsize(&c)) else {
            return self.pending_array = Some(JoblibArray::Unsizable("a dtype this analysis cannot size"));
        };
        let Some(size) = size else {
            return self.pending_array = Some(JoblibArray::Objects);
        };
        let count = shape.iter().try_fold(1u64, |n, &d| u64::try_from(d).ok().and_then(|d| n.checked_mul(d)));
        let aligned = matches!(state.get(b"numpy_array_alignment_bytes"), Some(Summary::Int(_)));
        self.pending_array = Some(match count.and_then(|c| c.checked_mul(size)) {
            Some(bytes) => JoblibArray::Raw { bytes, aligned },
            None => JoblibArray::Unsizable("a shape whose size overflows"),
        });
    }

    /// Reads the array after a wrapper both ways (see the module comment).
    pub(super) fn joblib_array<S: PickleSource>(
        &mut self,
        array: JoblibArray,
        input: &mut Input<S>,
        limits: &WalkLimits,
    ) -> Result<(), Stop> {
        self.read_array_as_opcodes(input, limits, array == JoblibArray::Objects)?;
        self.diverge("joblib array data: joblib.load reads it as data, pickle.load as opcodes");
        match array {
            JoblibArray::Raw { bytes, aligned } => {
                if aligned {
                    let padding = input.fixed(1)?;
                    input.payload(padding, 0, ReadMode::Continuing)?;
                }
                input.payload(bytes, 0, ReadMode::Continuing)?;
                Ok(())
            }
            JoblibArray::Objects => self.nested_load(input, limits),
            JoblibArray::Unsizable(why) => {
                Err(malformed(format!("a joblib array with {why}: the rest was not walked")))
            }
        }
    }

    /// What `pickle.load` makes of the bytes after the wrapper: walked with a copy of
    /// the machine, on up to [`PEEK`] bytes. Padding bytes and most array data are not
    /// opcodes, and this ends at once.
    fn read_array_as_opcodes<S: PickleSource>(
        &mut self,
        input: &mut Input<S>,
        limits: &WalkLimits,
        nested_pickle: bool,
    ) -> Result<(), Stop> {
        let ahead = input.peek_ahead(PEEK)?;
        if ahead.first().is_none_or(|&b| op::lookup(b).is_none()) {
            return Ok(());
        }
        let mut copy = Machine::new(limits);
        copy.stack = self.stack.clone();
        copy.marks = self.marks.clone();
        copy.memo = Rc::clone(&self.memo);
        copy.proto = self.proto;
        copy.nested = true;
        let mut peek_input =
            Input::new(Streamed(&ahead[..]), ahead.len() as u64, KEEP_STR as u64 * 4, limits.deadline, false);
        let end = copy.run(&mut peek_input, limits);
        if end == End::Truncated && (ahead.len() as u64) < input.remaining() {
            self.unresolved(format!(
                "the bytes after a joblib array wrapper read as pickle opcodes for more than {PEEK} bytes"
            ));
        }
        if end == End::Stop && !nested_pickle {
            // pickle.load would return there and go on with the bytes after as new
            // streams, inside what joblib reads as array data. (An object array is a
            // pickle: its STOP is expected, and the joblib reading walks what follows.)
            self.unresolved(
                "the bytes after a joblib array wrapper end the stream for pickle.load".to_owned(),
            );
        }
        self.adopt(&copy.walk);
        Ok(())
    }

    /// Takes another walk's imports and calls as this one's (not loader-dependent:
    /// the default unpickler runs them).
    fn adopt(&mut self, other: &Walk) {
        let mut remap = HashMap::new();
        for (i, site) in other.imports.iter().enumerate() {
            if let Ok(index) = self.record_import_site(site) {
                remap.insert(i as u32, index);
            }
        }
        for call in &other.calls {
            if let Some(&index) = remap.get(&call.callable) {
                self.record_call(index, call.via);
            }
        }
        self.walk.unresolved += other.unresolved;
        self.walk.indirect += other.indirect;
    }

    /// `pickle.load(file)` inside the stream: a fresh unpickler on the same bytes.
    fn nested_load<S: PickleSource>(
        &mut self,
        input: &mut Input<S>,
        limits: &WalkLimits,
    ) -> Result<(), Stop> {
        let stack = std::mem::take(&mut self.stack);
        let marks = std::mem::take(&mut self.marks);
        let memo = std::mem::take(&mut self.memo);
        let (proto, uncertain, nested) = (self.proto, self.memo_uncertain, self.nested);
        (self.proto, self.memo_uncertain, self.nested) = (0, false, true);
        let end = self.run(input, limits);
        (self.stack, self.marks, self.memo) = (stack, marks, memo);
        (self.proto, self.memo_uncertain, self.nested) = (proto, uncertain, nested);
        match end {
            End::Stop => Ok(()),
            other => Err(Stop::End(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtype_sizes() {
        assert_eq!(itemsize(b"f4"), Some(Some(4)));
        assert_eq!(itemsize(b"<i8"), Some(Some(8)));
        assert_eq!(itemsize(b"U3"), Some(Some(12)));
        assert_eq!(itemsize(b"V16"), Some(Some(16)));
        assert_eq!(itemsize(b"M8[ns]"), Some(Some(8)));
        assert_eq!(itemsize(b"b1"), Some(Some(1)));
        assert_eq!(itemsize(b"O8"), Some(None));
        assert_eq!(itemsize(b"f"), None);
        assert_eq!(itemsize(b"x4"), None);
    }
}

//! Opcodes that push one scalar: numbers, strings, bytes, booleans, `None`.

use std::cell::Cell;
use std::rc::Rc;

use super::numbers::{self, IntOrBool, IntValue};
use super::text::{self, Py2Str};
use super::value::{Text, Value};
use super::{KEEP_STR, Machine, Stop, malformed};
use crate::pickle::input::{Input, Payload, PickleSource, ReadMode};
use crate::pickle::opcodes::{self as op, Arg};

impl Machine {
    pub(super) fn scalar_opcode<S: PickleSource>(
        &mut self,
        opcode: &op::Opcode,
        input: &mut Input<S>,
    ) -> Result<(), Stop> {
        let value = match opcode.byte {
            op::NONE => Value::None,
            op::NEWTRUE | op::NEWFALSE => Value::Bool,
            op::BININT => Value::Int(IntValue::Small(i64::from(input.fixed(4)? as u32 as i32))),
            op::BININT1 => Value::Int(IntValue::Small(i64::try_from(input.fixed(1)?).unwrap_or(0))),
            op::BININT2 => Value::Int(IntValue::Small(i64::try_from(input.fixed(2)?).unwrap_or(0))),
            op::BINFLOAT => {
                input.fixed(8)?;
                Value::Float
            }
            op::INT | op::LONG | op::FLOAT => self.text_number(opcode.byte, input)?,
            op::LONG1 | op::LONG4 => counted_long(opcode.byte, input)?,
            op::STRING => self.string(input)?,
            op::UNICODE => self.unicode(input)?,
            op::SHORT_BINSTRING | op::BINSTRING => self.binstring(opcode, input)?,
            op::SHORT_BINUNICODE | op::BINUNICODE | op::BINUNICODE8 => self.binunicode(opcode, input)?,
            op::SHORT_BINBYTES | op::BINBYTES | op::BINBYTES8 | op::BYTEARRAY8 => binbytes(opcode, input)?,
            op::READONLY_BUFFER => return self.readonly_buffer(),
            _ => return Err(malformed(format!("{} is not a scalar opcode", opcode.name))),
        };
        self.push(value)
    }

    fn text_number<S: PickleSource>(&mut self, opcode: u8, input: &mut Input<S>) -> Result<Value, Stop> {
        let Some(line) = input.line(KEEP_STR)? else {
            self.diverge("a number too long to check");
            return Ok(if opcode == op::FLOAT { Value::Float } else { Value::Int(IntValue::Big) });
        };
        let value = match opcode {
            op::INT => numbers::int_line(&line).map(|v| match v {
                IntOrBool::Int(v) => Value::Int(v),
                IntOrBool::Bool => Value::Bool,
            }),
            op::LONG => numbers::long_line(&line).map(Value::Int),
            _ if numbers::float_line(&line) => Some(Value::Float),
            _ if numbers::python_float_line(&line) => {
                self.diverge("a FLOAT the C unpickler rejects and the pure-Python one reads");
                Some(Value::Float)
            }
            _ => None,
        };
        value.ok_or_else(|| malformed("could not convert the text argument to a number"))
    }

    fn string<S: PickleSource>(&mut self, input: &mut Input<S>) -> Result<Value, Stop> {
        let Some(line) = input.line(KEEP_STR)? else {
            self.diverge("a STRING too long to decode");
            return Ok(Value::Str(Text::TooLong));
        };
        let decoded = text::quoted_string(&line).map_err(malformed)?;
        Ok(self.py2_str(decoded))
    }

    /// A Python 2 `str`: ASCII by default; other bytes fail unless the loader passes an
    /// encoding.
    fn py2_str(&mut self, decoded: Py2Str) -> Value {
        match decoded {
            Py2Str::Ascii(bytes) => Value::Str(Text::Known(Rc::from(bytes))),
            Py2Str::NotAscii(bytes) => {
                self.diverge("a Python 2 string that is not ASCII (loaders that pass an encoding go on)");
                Value::Str(Text::Known(Rc::from(bytes)))
            }
        }
    }

    fn binstring<S: PickleSource>(
        &mut self,
        opcode: &op::Opcode,
        input: &mut Input<S>,
    ) -> Result<Value, Stop> {
        // CPython 3.11 reads the 4-byte length unsigned.
        let len = input.fixed(if opcode.byte == op::SHORT_BINSTRING { 1 } else { 4 })?;
        match input.payload(len, KEEP_STR, ReadMode::Dropping)? {
            Payload::Kept(bytes) => Ok(self.py2_str(Py2Str::from_bytes(bytes.to_vec()))),
            Payload::Dropped => {
                self.diverge("a Python 2 string too long to check for ASCII");
                Ok(Value::Str(Text::TooLong))
            }
        }
    }

    fn binunicode<S: PickleSource>(
        &mut self,
        opcode: &op::Opcode,
        input: &mut Input<S>,
    ) -> Result<Value, Stop> {
        let Arg::Counted(width) = opcode.arg else {
            return Err(malformed("BINUNICODE without a length"));
        };
        let len = input.fixed(width)?;
        if len > i64::MAX as u64 {
            return Err(malformed("BINUNICODE exceeds the maximum size"));
        }
        match input.payload(len, KEEP_STR, ReadMode::Dropping)? {
            Payload::Kept(bytes) => {
                if !text::utf8_surrogatepass(&bytes) {
                    return Err(malformed("'utf-8' codec can't decode the string"));
                }
                Ok(Value::Str(Text::Known(bytes)))
            }
            Payload::Dropped => {
                self.diverge("a string too long to check for valid UTF-8");
                Ok(Value::Str(Text::TooLong))
            }
        }
    }

    fn unicode<S: PickleSource>(&mut self, input: &mut Input<S>) -> Result<Value, Stop> {
        let Some(line) = input.line(KEEP_STR)? else {
            self.diverge("a UNICODE string too long to decode");
            return Ok(Value::Str(Text::TooLong));
        };
        let decoded = text::raw_unicode_escape(&line).map_err(malformed)?;
        Ok(Value::Str(Text::Known(Rc::from(decoded))))
    }

    fn readonly_buffer(&mut self) -> Result<(), Stop> {
        let top = self.peek()?.clone();
        match top {
            Value::Bytes | Value::View => Ok(()),
            Value::ByteArray(_) => {
                if let Some(last) = self.stack.last_mut() {
                    *last = Value::View;
                }
                Ok(())
            }
            Value::Stub(_) => {
                self.diverge("READONLY_BUFFER on an object the loader provides");
                Ok(())
            }
            other => Err(malformed(format!(
                "memoryview: a bytes-like object is required, not {}",
                other.describe()
            ))),
        }
    }
}

/// LONG1/LONG4: a little-endian two's complement integer of a counted length.
fn counted_long<S: PickleSource>(opcode: u8, input: &mut Input<S>) -> Result<Value, Stop> {
    let len = if opcode == op::LONG1 {
        input.fixed(1)?
    } else {
        let len = input.fixed(4)? as u32 as i32;
        u64::try_from(len).map_err(|_| malformed("LONG pickle has negative byte count"))?
    };
    if len == 0 {
        return Ok(Value::Int(IntValue::Small(0)));
    }
    Ok(Value::Int(match input.payload(len, 64, ReadMode::Dropping)? {
        Payload::Kept(bytes) => twos_complement(&bytes),
        Payload::Dropped => IntValue::Big,
    }))
}

fn twos_complement(bytes: &[u8]) -> IntValue {
    let negative = bytes.last().is_some_and(|&b| b & 0x80 != 0);
    let fill = if negative { 0xff } else { 0 };
    if bytes.len() > 8 {
        let (low, high) = bytes.split_at(8);
        let sign_consistent = (low[7] & 0x80 != 0) == negative;
        if !high.iter().all(|&b| b == fill) || !sign_consistent {
            return IntValue::Big;
        }
        return twos_complement(low);
    }
    let mut raw = [fill; 8];
    raw[..bytes.len()].copy_from_slice(bytes);
    IntValue::Small(i64::from_le_bytes(raw))
}

fn binbytes<S: PickleSource>(opcode: &op::Opcode, input: &mut Input<S>) -> Result<Value, Stop> {
    let Arg::Counted(width) = opcode.arg else {
        return Err(malformed("BINBYTES without a length"));
    };
    let len = input.fixed(width)?;
    if len > i64::MAX as u64 {
        return Err(malformed("BINBYTES exceeds the maximum size"));
    }
    input.payload(len, 0, ReadMode::Continuing)?;
    Ok(if opcode.byte == op::BYTEARRAY8 { Value::ByteArray(Rc::new(Cell::new(len))) } else { Value::Bytes })
}

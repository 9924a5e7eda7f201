//! Symbolic values: what the walker keeps of each object the unpickler would build.
//!
//! Data values (numbers, strings, containers) are exact about what decides whether an
//! opcode fails in CPython: their type, a list's length, whether a dict is empty or has
//! a key that is not a `str`, whether a tuple is hashable. Everything that comes out of
//! `find_class`, a call, `persistent_load` or the extension registry is a *stub*: an
//! object the walker cannot know, modelled as the most permissive one (callable, a
//! class, accepts items, attributes and state), so that the walk goes on wherever
//! a real object could.
//!
//! Containers never hold other values (only flags and lengths), so no value keeps
//! another alive: memory stays proportional to the stack and memo.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use super::numbers::IntValue;

/// Where a stub comes from, for reporting what is called.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Origin {
    /// `find_class`: index into the walk's imports.
    Import(u32),
    /// The result of calling something: the import it came from, if any.
    CallOf(Option<u32>),
    Persistent,
    Extension,
    Buffer,
    /// An import whose name the walk could not know.
    Unresolved,
    /// `numpy.dtype(code, ...)`: the import called, and the code's index in the
    /// machine's dtype table (joblib arrays are sized by it).
    Dtype(u32, u32),
}

impl Origin {
    /// The import a stub stands for or came from.
    pub(crate) fn import(self) -> Option<u32> {
        match self {
            Self::Import(i) | Self::CallOf(Some(i)) | Self::Dtype(i, _) => Some(i),
            _ => None,
        }
    }
}

/// A Python `str`: its UTF-8 (surrogatepass) bytes, or only the fact that it is a
/// string when too long to keep.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Text {
    Known(Rc<[u8]>),
    TooLong,
}

/// What a dict entry holds, for the few uses that read values (joblib's array
/// wrappers): small integers, integer tuples, dtypes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Summary {
    None,
    Int(i64),
    Ints(Rc<[i64]>),
    Dtype(u32),
    Other,
}

/// Entries kept per dict (by `str` key).
const MAX_DICT_ENTRIES: usize = 16;

#[derive(Debug, Default)]
pub(crate) struct DictState {
    /// The first entries with `str` keys, with what they hold.
    pub(crate) entries: RefCell<Vec<(Rc<[u8]>, Summary)>>,
    pub(crate) non_empty: Cell<bool>,
    /// A key that is not a `str` (fails as `**kwargs`).
    pub(crate) non_str_key: Cell<bool>,
    /// A stub key (a `str` or not: the loader's objects decide).
    pub(crate) stub_key: Cell<bool>,
}

/// One item of a 2-tuple, as `BUILD` needs it (`(state, slotstate)`).
#[derive(Clone, Debug)]
pub(crate) enum Slot {
    None,
    Dict(Rc<DictState>),
    Stub,
    /// Anything else, and whether it is false in Python (`None` when unknown).
    Other {
        falsy: Option<bool>,
    },
}

impl Slot {
    /// Whether the item is false in Python (`if state:`), when known.
    pub(crate) fn falsy(&self) -> Option<bool> {
        match self {
            Self::None => Some(true),
            Self::Dict(d) => Some(!d.non_empty.get()),
            Self::Stub => None,
            Self::Other { falsy } => *falsy,
        }
    }
}

impl DictState {
    /// Records `dict[key] = value` for a `str` key.
    pub(crate) fn remember(&self, key: &Value, value: &Value) {
        let Value::Str(Text::Known(key)) = key else {
            return;
        };
        let mut entries = self.entries.borrow_mut();
        if let Some(entry) = entries.iter_mut().find(|(k, _)| k == key) {
            entry.1 = value.summary();
        } else if entries.len() < MAX_DICT_ENTRIES {
            entries.push((Rc::clone(key), value.summary()));
        }
    }

    /// What the entry `key` holds, if recorded.
    pub(crate) fn get(&self, key: &[u8]) -> Option<Summary> {
        self.entries.borrow().iter().find(|(k, _)| &**k == key).map(|(_, v)| v.clone())
    }
}

#[derive(Debug)]
pub(crate) struct Tuple {
    pub(crate) len: usize,
    /// The items, when all are small integers (a shape).
    pub(crate) ints: Option<Rc<[i64]>>,
    /// The first item, when it is a short known string (a dtype code).
    pub(crate) first_str: Option<Rc<[u8]>>,
    pub(crate) hashable: bool,
    /// The two items of a 2-tuple.
    pub(crate) pair: Option<(Slot, Slot)>,
    /// Imports passed directly as items (a call hands them to the callee).
    pub(crate) imports: Box<[u32]>,
}

#[derive(Clone, Debug)]
pub(crate) enum Value {
    None,
    Bool,
    Int(IntValue),
    Float,
    Str(Text),
    Bytes,
    ByteArray(Rc<Cell<u64>>),
    /// A read-only `memoryview` of a bytearray (`READONLY_BUFFER`): unhashable.
    View,
    Tuple(Rc<Tuple>),
    List(Rc<Cell<u64>>),
    Dict(Rc<DictState>),
    Set,
    FrozenSet,
    Stub(Origin),
}

impl Value {
    pub(crate) fn hashable(&self) -> bool {
        match self {
            Self::ByteArray(_) | Self::View | Self::List(_) | Self::Dict(_) | Self::Set => false,
            Self::Tuple(t) => t.hashable,
            _ => true,
        }
    }

    pub(crate) fn is_stub(&self) -> bool {
        matches!(self, Self::Stub(_))
    }

    pub(crate) fn slot(&self) -> Slot {
        match self {
            Self::None => Slot::None,
            Self::Dict(d) => Slot::Dict(Rc::clone(d)),
            Self::Stub(_) => Slot::Stub,
            other => Slot::Other { falsy: other.falsy() },
        }
    }

    fn summary(&self) -> Summary {
        match self {
            Self::None => Summary::None,
            Self::Int(IntValue::Small(i)) => Summary::Int(*i),
            Self::Tuple(t) => t.ints.clone().map_or(Summary::Other, Summary::Ints),
            Self::Stub(Origin::Dtype(_, code)) => Summary::Dtype(*code),
            _ => Summary::Other,
        }
    }

    /// Whether the value is false in Python, when the walk knows.
    pub(crate) fn falsy(&self) -> Option<bool> {
        match self {
            Self::None => Some(true),
            Self::Int(IntValue::Small(v)) => Some(*v == 0),
            Self::Int(IntValue::Big) => Some(false),
            Self::Str(Text::Known(t)) => Some(t.is_empty()),
            Self::Str(Text::TooLong) => Some(false),
            Self::ByteArray(len) | Self::List(len) => Some(len.get() == 0),
            Self::Tuple(t) => Some(t.len == 0),
            Self::Dict(d) => Some(!d.non_empty.get()),
            Self::Bool
            | Self::Float
            | Self::Bytes
            | Self::View
            | Self::Set
            | Self::FrozenSet
            | Self::Stub(_) => None,
        }
    }

    /// A tuple of `items`.
    pub(crate) fn tuple(items: &[Value]) -> Self {
        let pair = match items {
            [a, b] => Some((a.slot(), b.slot())),
            _ => None,
        };
        let imports: Box<[u32]> = items
            .iter()
            .filter_map(|v| match v {
                Self::Stub(Origin::Import(i)) => Some(*i),
                _ => None,
            })
            .collect();
        let ints: Option<Rc<[i64]>> = if items.len() <= 32 {
            items
                .iter()
                .map(|v| if let Self::Int(IntValue::Small(i)) = v { Some(*i) } else { None })
                .collect()
        } else {
            None
        };
        let first_str = match items.first() {
            Some(Self::Str(Text::Known(t))) if t.len() <= 64 => Some(Rc::clone(t)),
            _ => None,
        };
        Self::Tuple(Rc::new(Tuple {
            len: items.len(),
            ints,
            first_str,
            hashable: items.iter().all(Value::hashable),
            pair,
            imports,
        }))
    }

    /// An integer usable as a sequence index (`bool` is an `int`).
    pub(crate) fn index(&self) -> Option<i64> {
        match self {
            Self::Int(IntValue::Small(v)) => Some(*v),
            Self::Bool => Some(0),
            _ => None,
        }
    }

    /// Whether this value could be a byte (an int in 0..=255) for a bytearray.
    pub(crate) fn byte_value(&self) -> Option<bool> {
        match self {
            Self::Bool => Some(true),
            Self::Int(IntValue::Small(v)) => Some((0..=255).contains(v)),
            Self::Int(IntValue::Big) => Some(false),
            Self::Stub(_) => None,
            _ => Some(false),
        }
    }

    pub(crate) fn describe(&self) -> &'static str {
        match self {
            Self::None => "None",
            Self::Bool => "a bool",
            Self::Int(_) => "an int",
            Self::Float => "a float",
            Self::Str(_) => "a str",
            Self::Bytes => "bytes",
            Self::ByteArray(_) => "a bytearray",
            Self::View => "a memoryview",
            Self::Tuple(_) => "a tuple",
            Self::List(_) => "a list",
            Self::Dict(_) => "a dict",
            Self::Set => "a set",
            Self::FrozenSet => "a frozenset",
            Self::Stub(Origin::Import(_)) => "an imported global",
            Self::Stub(Origin::CallOf(_)) => "a call result",
            Self::Stub(Origin::Persistent) => "a persistent object",
            Self::Stub(Origin::Extension) => "an extension-registry object",
            Self::Stub(Origin::Buffer) => "an out-of-band buffer",
            Self::Stub(Origin::Unresolved) => "an unresolved import",
            Self::Stub(Origin::Dtype(..)) => "a dtype",
        }
    }
}

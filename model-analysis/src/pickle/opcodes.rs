//! The pickle opcodes of protocols 0-5, as CPython's `Lib/pickle.py` defines them, and
//! how each one encodes its argument.

/// How an opcode's argument is laid out after the opcode byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Arg {
    None,
    /// Fixed-size little-endian bytes.
    Fixed(u8),
    /// A newline-terminated text argument.
    Line,
    /// Two newline-terminated lines (GLOBAL, INST: module then name).
    TwoLines,
    /// A length prefix of this many bytes (little-endian), then that many bytes.
    Counted(u8),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Opcode {
    pub(crate) byte: u8,
    pub(crate) name: &'static str,
    pub(crate) arg: Arg,
    /// First protocol that defines it.
    pub(crate) protocol: u8,
}

macro_rules! opcodes {
    ($($konst:ident = $byte:literal, $name:literal, $arg:expr, $proto:literal;)*) => {
        $(
            #[allow(dead_code, reason = "the whole opcode table; some opcodes are only handled by their argument kind")]
            pub(crate) const $konst: u8 = $byte;
        )*
        const TABLE: &[Opcode] = &[
            $(Opcode { byte: $byte, name: $name, arg: $arg, protocol: $proto },)*
        ];
    };
}

opcodes! {
    MARK = b'(', "MARK", Arg::None, 0;
    STOP = b'.', "STOP", Arg::None, 0;
    POP = b'0', "POP", Arg::None, 0;
    POP_MARK = b'1', "POP_MARK", Arg::None, 1;
    DUP = b'2', "DUP", Arg::None, 0;
    FLOAT = b'F', "FLOAT", Arg::Line, 0;
    INT = b'I', "INT", Arg::Line, 0;
    BININT = b'J', "BININT", Arg::Fixed(4), 1;
    BININT1 = b'K', "BININT1", Arg::Fixed(1), 1;
    LONG = b'L', "LONG", Arg::Line, 0;
    BININT2 = b'M', "BININT2", Arg::Fixed(2), 1;
    NONE = b'N', "NONE", Arg::None, 0;
    PERSID = b'P', "PERSID", Arg::Line, 0;
    BINPERSID = b'Q', "BINPERSID", Arg::None, 1;
    REDUCE = b'R', "REDUCE", Arg::None, 0;
    STRING = b'S', "STRING", Arg::Line, 0;
    BINSTRING = b'T', "BINSTRING", Arg::Counted(4), 1;
    SHORT_BINSTRING = b'U', "SHORT_BINSTRING", Arg::Counted(1), 1;
    UNICODE = b'V', "UNICODE", Arg::Line, 0;
    BINUNICODE = b'X', "BINUNICODE", Arg::Counted(4), 1;
    APPEND = b'a', "APPEND", Arg::None, 0;
    BUILD = b'b', "BUILD", Arg::None, 0;
    GLOBAL = b'c', "GLOBAL", Arg::TwoLines, 0;
    DICT = b'd', "DICT", Arg::None, 0;
    EMPTY_DICT = b'}', "EMPTY_DICT", Arg::None, 1;
    APPENDS = b'e', "APPENDS", Arg::None, 1;
    GET = b'g', "GET", Arg::Line, 0;
    BINGET = b'h', "BINGET", Arg::Fixed(1), 1;
    INST = b'i', "INST", Arg::TwoLines, 0;
    LONG_BINGET = b'j', "LONG_BINGET", Arg::Fixed(4), 1;
    LIST = b'l', "LIST", Arg::None, 0;
    EMPTY_LIST = b']', "EMPTY_LIST", Arg::None, 1;
    OBJ = b'o', "OBJ", Arg::None, 1;
    PUT = b'p', "PUT", Arg::Line, 0;
    BINPUT = b'q', "BINPUT", Arg::Fixed(1), 1;
    LONG_BINPUT = b'r', "LONG_BINPUT", Arg::Fixed(4), 1;
    SETITEM = b's', "SETITEM", Arg::None, 0;
    TUPLE = b't', "TUPLE", Arg::None, 0;
    EMPTY_TUPLE = b')', "EMPTY_TUPLE", Arg::None, 1;
    SETITEMS = b'u', "SETITEMS", Arg::None, 1;
    BINFLOAT = b'G', "BINFLOAT", Arg::Fixed(8), 1;
    PROTO = 0x80, "PROTO", Arg::Fixed(1), 2;
    NEWOBJ = 0x81, "NEWOBJ", Arg::None, 2;
    EXT1 = 0x82, "EXT1", Arg::Fixed(1), 2;
    EXT2 = 0x83, "EXT2", Arg::Fixed(2), 2;
    EXT4 = 0x84, "EXT4", Arg::Fixed(4), 2;
    TUPLE1 = 0x85, "TUPLE1", Arg::None, 2;
    TUPLE2 = 0x86, "TUPLE2", Arg::None, 2;
    TUPLE3 = 0x87, "TUPLE3", Arg::None, 2;
    NEWTRUE = 0x88, "NEWTRUE", Arg::None, 2;
    NEWFALSE = 0x89, "NEWFALSE", Arg::None, 2;
    LONG1 = 0x8a, "LONG1", Arg::Counted(1), 2;
    LONG4 = 0x8b, "LONG4", Arg::Counted(4), 2;
    BINBYTES = b'B', "BINBYTES", Arg::Counted(4), 3;
    SHORT_BINBYTES = b'C', "SHORT_BINBYTES", Arg::Counted(1), 3;
    SHORT_BINUNICODE = 0x8c, "SHORT_BINUNICODE", Arg::Counted(1), 4;
    BINUNICODE8 = 0x8d, "BINUNICODE8", Arg::Counted(8), 4;
    BINBYTES8 = 0x8e, "BINBYTES8", Arg::Counted(8), 4;
    EMPTY_SET = 0x8f, "EMPTY_SET", Arg::None, 4;
    ADDITEMS = 0x90, "ADDITEMS", Arg::None, 4;
    FROZENSET = 0x91, "FROZENSET", Arg::None, 4;
    NEWOBJ_EX = 0x92, "NEWOBJ_EX", Arg::None, 4;
    STACK_GLOBAL = 0x93, "STACK_GLOBAL", Arg::None, 4;
    MEMOIZE = 0x94, "MEMOIZE", Arg::None, 4;
    FRAME = 0x95, "FRAME", Arg::Fixed(8), 4;
    BYTEARRAY8 = 0x96, "BYTEARRAY8", Arg::Counted(8), 5;
    NEXT_BUFFER = 0x97, "NEXT_BUFFER", Arg::None, 5;
    READONLY_BUFFER = 0x98, "READONLY_BUFFER", Arg::None, 5;
}

/// Highest protocol CPython writes or reads.
pub(crate) const HIGHEST_PROTOCOL: u8 = 5;

/// Looks an opcode up by its byte.
pub(crate) fn lookup(byte: u8) -> Option<&'static Opcode> {
    // 68 entries: a linear scan is cheaper than it looks next to the I/O, but the walker
    // calls this per opcode, so index it once.
    static INDEX: std::sync::OnceLock<[u8; 256]> = std::sync::OnceLock::new();
    let index = INDEX.get_or_init(|| {
        let mut index = [u8::MAX; 256];
        for (i, op) in TABLE.iter().enumerate() {
            index[usize::from(op.byte)] = u8::try_from(i).unwrap_or(u8::MAX);
        }
        index
    });
    TABLE.get(usize::from(index[usize::from(byte)]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_has_every_opcode_once() {
        let mut seen = [false; 256];
        for op in TABLE {
            assert!(!seen[usize::from(op.byte)], "duplicate opcode {:#x}", op.byte);
            seen[usize::from(op.byte)] = true;
        }
        // CPython 3.12 pickle.py defines 68 opcodes.
        assert_eq!(TABLE.len(), 68);
        assert_eq!(lookup(STACK_GLOBAL).map(|o| o.name), Some("STACK_GLOBAL"));
        assert_eq!(lookup(0x00), None);
        assert_eq!(lookup(0xff), None);
    }
}

//! A small reader of the kernel's BTF (`/sys/kernel/btf/vmlinux`) that answers three
//! questions: at which byte offset does `struct X` keep member `a.b.c` (anonymous
//! unions and structs are searched through, as C does), and which type ids do a struct
//! and a function (a kfunc) have.
//!
//! aya loads BTF but keeps member lookup private, and the maintained crate that exposes
//! it is LGPL; this reader is a few hundred lines against the kernel's
//! `Documentation/bpf/btf.rst`. It parses kernel-supplied bytes, so every read is
//! bounds-checked and every count capped; a mutation test feeds it 100,000 corrupted
//! sections (`tests.rs`).

use std::collections::HashMap;

use thiserror::Error;

const MAGIC: u16 = 0xeb9f;
const HEADER_LEN: usize = 24;
/// vmlinux holds ~150k types; this bounds memory on hostile input.
const MAX_TYPES: usize = 4_000_000;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum BtfError {
    #[error("BTF data is malformed: {0}")]
    Malformed(&'static str),
    #[error("BTF has no struct named `{0}`")]
    NoStruct(String),
    #[error("struct `{structure}` has no member `{member}` in this kernel")]
    NoMember { structure: String, member: String },
    #[error("member `{member}` of `{structure}` is a bitfield")]
    Bitfield { structure: String, member: String },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Int,
    Ptr,
    Array,
    Struct,
    Union,
    Enum,
    Fwd,
    Typedef,
    Volatile,
    Const,
    Restrict,
    Func,
    FuncProto,
    Var,
    Datasec,
    Float,
    DeclTag,
    TypeTag,
    Enum64,
}

impl Kind {
    fn from_raw(raw: u32) -> Option<Self> {
        Some(match raw {
            1 => Self::Int,
            2 => Self::Ptr,
            3 => Self::Array,
            4 => Self::Struct,
            5 => Self::Union,
            6 => Self::Enum,
            7 => Self::Fwd,
            8 => Self::Typedef,
            9 => Self::Volatile,
            10 => Self::Const,
            11 => Self::Restrict,
            12 => Self::Func,
            13 => Self::FuncProto,
            14 => Self::Var,
            15 => Self::Datasec,
            16 => Self::Float,
            17 => Self::DeclTag,
            18 => Self::TypeTag,
            19 => Self::Enum64,
            _ => return None,
        })
    }

    /// Bytes of kind-specific data after the 12-byte common header.
    fn extra_len(self, vlen: usize) -> usize {
        match self {
            Self::Int | Self::Var | Self::DeclTag => 4,
            Self::Array => 12,
            Self::Struct | Self::Union | Self::Datasec | Self::Enum64 => 12 * vlen,
            Self::Enum | Self::FuncProto => 8 * vlen,
            _ => 0,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Member {
    name_off: u32,
    type_id: u32,
    /// Bit offset (or, with kind_flag, bitfield size << 24 | bit offset).
    offset: u32,
}

#[derive(Clone, Debug)]
struct Type {
    kind: Kind,
    name_off: u32,
    kind_flag: bool,
    /// Referenced type for modifiers, typedefs and pointers.
    target: u32,
    members: Vec<Member>,
}

/// Parsed BTF: types and the string section.
pub struct Btf {
    types: Vec<Type>,
    strings: Vec<u8>,
    structs: HashMap<String, u32>,
}

impl Btf {
    /// The running kernel's BTF.
    ///
    /// # Errors
    /// The file is missing (kernel without `CONFIG_DEBUG_INFO_BTF`) or malformed.
    pub fn from_sys_fs() -> Result<Self, std::io::Error> {
        let bytes = std::fs::read("/sys/kernel/btf/vmlinux")?;
        Self::parse(&bytes).map_err(std::io::Error::other)
    }

    /// Parses raw BTF bytes.
    ///
    /// # Errors
    /// Bad magic, lengths outside the buffer, unknown kinds, too many types.
    pub fn parse(bytes: &[u8]) -> Result<Self, BtfError> {
        let mut cur = Cursor { bytes, pos: 0 };
        if cur.u16()? != MAGIC {
            return Err(BtfError::Malformed("bad magic (big-endian BTF is not supported)"));
        }
        let _version = cur.u8()?;
        let _flags = cur.u8()?;
        let hdr_len = cur.u32()? as usize;
        let (type_off, type_len) = (cur.u32()? as usize, cur.u32()? as usize);
        let (str_off, str_len) = (cur.u32()? as usize, cur.u32()? as usize);
        if hdr_len < HEADER_LEN {
            return Err(BtfError::Malformed("header shorter than 24 bytes"));
        }
        let section = |off: usize, len: usize| {
            let start = hdr_len.checked_add(off).ok_or(BtfError::Malformed("offset overflow"))?;
            let end = start.checked_add(len).ok_or(BtfError::Malformed("length overflow"))?;
            bytes.get(start..end).ok_or(BtfError::Malformed("section outside the data"))
        };
        let strings = section(str_off, str_len)?.to_vec();
        let types = parse_types(section(type_off, type_len)?)?;
        let mut btf = Self { types, strings, structs: HashMap::new() };
        btf.index_structs();
        Ok(btf)
    }

    fn index_structs(&mut self) {
        for (index, ty) in self.types.iter().enumerate().skip(1) {
            if ty.kind != Kind::Struct || ty.members.is_empty() {
                continue;
            }
            let Some(name) = self.name(ty.name_off) else { continue };
            // The first complete definition wins; later duplicates are identical in vmlinux.
            self.structs.entry(name.to_owned()).or_insert(index as u32);
        }
    }

    fn name(&self, offset: u32) -> Option<&str> {
        let rest = self.strings.get(offset as usize..)?;
        let end = rest.iter().position(|b| *b == 0)?;
        std::str::from_utf8(&rest[..end]).ok()
    }

    /// Whether the kernel has `struct name`.
    #[must_use]
    pub fn has_struct(&self, name: &str) -> bool {
        self.structs.contains_key(name)
    }

    /// The type id of `struct name` (what `bpf_rdonly_cast` takes).
    #[must_use]
    pub fn struct_id(&self, name: &str) -> Option<u32> {
        self.structs.get(name).copied()
    }

    /// The type id of function `name` (a kfunc's id in a `BPF_PSEUDO_KFUNC_CALL`).
    /// A linear scan: asked once or twice at start-up, it is not worth an index.
    #[must_use]
    pub fn func_id(&self, name: &str) -> Option<u32> {
        let index = self
            .types
            .iter()
            .enumerate()
            .skip(1)
            .find(|(_, ty)| ty.kind == Kind::Func && self.name(ty.name_off) == Some(name))?
            .0;
        u32::try_from(index).ok()
    }

    /// Byte offset of `path` (`"f_path"`, `"d_name.len"`) inside `struct structure`.
    ///
    /// # Errors
    /// The struct or a member is missing, or a member is a bitfield.
    pub fn member_offset(&self, structure: &str, path: &str) -> Result<u32, BtfError> {
        let mut type_id =
            *self.structs.get(structure).ok_or_else(|| BtfError::NoStruct(structure.to_owned()))?;
        let mut total_bits: u64 = 0;
        for member in path.split('.') {
            let composite = self.resolve(type_id);
            let not_found =
                || BtfError::NoMember { structure: structure.to_owned(), member: path.to_owned() };
            let (bits, found) = self.find_member(composite, member, 0).ok_or_else(not_found)?;
            total_bits += u64::from(bits);
            type_id = found;
        }
        if !total_bits.is_multiple_of(8) {
            return Err(BtfError::Bitfield { structure: structure.to_owned(), member: path.to_owned() });
        }
        u32::try_from(total_bits / 8).map_err(|_| BtfError::Malformed("offset overflow"))
    }

    /// Searches `name` among the members of struct/union `type_id`, descending into
    /// anonymous members. Returns the bit offset and the member's type.
    fn find_member(&self, type_id: u32, name: &str, depth: u32) -> Option<(u32, u32)> {
        // Anonymous nesting in vmlinux is a few levels deep; the cap stops cycles.
        if depth > 16 {
            return None;
        }
        let ty = self.types.get(type_id as usize)?;
        if !matches!(ty.kind, Kind::Struct | Kind::Union) {
            return None;
        }
        for member in &ty.members {
            let bits = if ty.kind_flag { member.offset & 0x00ff_ffff } else { member.offset };
            if member.name_off == 0 {
                let inner = self.resolve(member.type_id);
                if let Some((inner_bits, found)) = self.find_member(inner, name, depth + 1) {
                    return Some((bits + inner_bits, found));
                }
            } else if self.name(member.name_off) == Some(name) {
                return Some((bits, member.type_id));
            }
        }
        None
    }

    /// Follows typedefs and qualifiers to the underlying type.
    fn resolve(&self, mut type_id: u32) -> u32 {
        for _ in 0..32 {
            let Some(ty) = self.types.get(type_id as usize) else { return type_id };
            match ty.kind {
                Kind::Typedef | Kind::Volatile | Kind::Const | Kind::Restrict | Kind::TypeTag => {
                    type_id = ty.target;
                }
                _ => return type_id,
            }
        }
        type_id
    }
}

fn parse_types(section: &[u8]) -> Result<Vec<Type>, BtfError> {
    // Type id 0 is `void`.
    let mut types =
        vec![Type { kind: Kind::Int, name_off: 0, kind_flag: false, target: 0, members: Vec::new() }];
    let mut cur = Cursor { bytes: section, pos: 0 };
    while cur.pos < section.len() {
        if types.len() >= MAX_TYPES {
            return Err(BtfError::Malformed("too many types"));
        }
        let name_off = cur.u32()?;
        let info = cur.u32()?;
        let size_or_type = cur.u32()?;
        let kind = Kind::from_raw((info >> 24) & 0x1f).ok_or(BtfError::Malformed("unknown type kind"))?;
        let vlen = (info & 0xffff) as usize;
        let kind_flag = info >> 31 == 1;
        let mut members = Vec::new();
        if matches!(kind, Kind::Struct | Kind::Union) {
            members.reserve(vlen.min(cur.remaining() / 12));
            for _ in 0..vlen {
                members.push(Member { name_off: cur.u32()?, type_id: cur.u32()?, offset: cur.u32()? });
            }
        } else {
            cur.skip(kind.extra_len(vlen))?;
        }
        types.push(Type { kind, name_off, kind_flag, target: size_or_type, members });
    }
    Ok(types)
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], BtfError> {
        let end = self.pos.checked_add(N).ok_or(BtfError::Malformed("overflow"))?;
        let slice = self.bytes.get(self.pos..end).ok_or(BtfError::Malformed("truncated"))?;
        self.pos = end;
        let mut out = [0u8; N];
        out.copy_from_slice(slice);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, BtfError> {
        Ok(self.take::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, BtfError> {
        Ok(u16::from_le_bytes(self.take()?))
    }

    fn u32(&mut self) -> Result<u32, BtfError> {
        Ok(u32::from_le_bytes(self.take()?))
    }

    fn skip(&mut self, len: usize) -> Result<(), BtfError> {
        let end = self.pos.checked_add(len).ok_or(BtfError::Malformed("overflow"))?;
        if end > self.bytes.len() {
            return Err(BtfError::Malformed("truncated"));
        }
        self.pos = end;
        Ok(())
    }

    fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.pos)
    }
}

#[cfg(test)]
mod tests;

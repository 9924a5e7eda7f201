use super::*;

/// Builds BTF bytes: a tiny assembler for the kinds the tests need.
#[derive(Default)]
struct Builder {
    types: Vec<u8>,
    strings: Vec<u8>,
    next_id: u32,
}

impl Builder {
    fn new() -> Self {
        Self { strings: vec![0], next_id: 1, ..Self::default() }
    }

    fn string(&mut self, s: &str) -> u32 {
        if s.is_empty() {
            return 0;
        }
        let off = self.strings.len() as u32;
        self.strings.extend_from_slice(s.as_bytes());
        self.strings.push(0);
        off
    }

    fn head(&mut self, name: &str, kind: u32, vlen: u32, kind_flag: bool, size_or_type: u32) -> u32 {
        let name = self.string(name);
        let info = (u32::from(kind_flag) << 31) | (kind << 24) | vlen;
        for word in [name, info, size_or_type] {
            self.types.extend_from_slice(&word.to_le_bytes());
        }
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn int(&mut self, name: &str, size: u32) -> u32 {
        let id = self.head(name, 1, 0, false, size);
        self.types.extend_from_slice(&(size * 8).to_le_bytes());
        id
    }

    fn composite(&mut self, kind: u32, name: &str, size: u32, members: &[(&str, u32, u32)]) -> u32 {
        let id = self.head(name, kind, members.len() as u32, false, size);
        for (member, type_id, bits) in members {
            let off = self.string(member);
            for word in [off, *type_id, *bits] {
                self.types.extend_from_slice(&word.to_le_bytes());
            }
        }
        id
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&MAGIC.to_le_bytes());
        out.extend_from_slice(&[1, 0]);
        for word in [24u32, 0, self.types.len() as u32, self.types.len() as u32, self.strings.len() as u32] {
            out.extend_from_slice(&word.to_le_bytes());
        }
        out.extend_from_slice(&self.types);
        out.extend_from_slice(&self.strings);
        out
    }
}

/// struct inner { long p; int q; };
/// struct outer { int a; union { int b; struct { int c; int d; }; }; struct inner x; };
fn sample() -> Vec<u8> {
    let mut b = Builder::new();
    let int = b.int("int", 4);
    let long = b.int("long", 8);
    let inner = b.composite(4, "inner", 16, &[("p", long, 0), ("q", int, 64)]);
    let typedef = b.head("inner_t", 8, 0, false, inner);
    let anon_struct = b.composite(4, "", 8, &[("c", int, 0), ("d", int, 32)]);
    let anon_union = b.composite(5, "", 8, &[("b", int, 0), ("", anon_struct, 0)]);
    b.composite(4, "outer", 32, &[("a", int, 0), ("", anon_union, 64), ("x", typedef, 128)]);
    b.bytes()
}

#[test]
fn finds_direct_anonymous_and_nested_members() {
    let btf = Btf::parse(&sample()).expect("parse");
    assert_eq!(btf.member_offset("outer", "a"), Ok(0));
    assert_eq!(btf.member_offset("outer", "b"), Ok(8));
    assert_eq!(btf.member_offset("outer", "d"), Ok(12));
    assert_eq!(btf.member_offset("outer", "x.q"), Ok(24));
    assert_eq!(btf.member_offset("inner", "q"), Ok(8));
}

#[test]
fn struct_and_function_ids() {
    let mut b = Builder::new();
    let int = b.int("int", 4);
    let proto = b.head("", 13, 0, false, int);
    let func = b.head("bpf_rdonly_cast", 12, 0, false, proto);
    let file = b.composite(4, "file", 4, &[("f", int, 0)]);
    let btf = Btf::parse(&b.bytes()).expect("parse");
    assert_eq!(btf.func_id("bpf_rdonly_cast"), Some(func));
    assert_eq!(btf.func_id("file"), None, "a struct is not a function");
    assert_eq!(btf.func_id("nope"), None);
    assert_eq!(btf.struct_id("file"), Some(file));
    assert_eq!(btf.struct_id("int"), None);
}

#[test]
fn missing_things_are_named_errors() {
    let btf = Btf::parse(&sample()).expect("parse");
    assert_eq!(btf.member_offset("nope", "a"), Err(BtfError::NoStruct("nope".into())));
    assert!(matches!(btf.member_offset("outer", "x.zz"), Err(BtfError::NoMember { .. })));
    assert!(!btf.has_struct("nope"));
}

#[test]
fn every_truncation_is_an_error_not_a_panic() {
    let bytes = sample();
    for len in 0..bytes.len() {
        assert!(Btf::parse(&bytes[..len]).is_err(), "{len} of {} bytes parsed as valid BTF", bytes.len());
    }
    assert!(Btf::parse(&bytes).is_ok());
    let mut bad = bytes.clone();
    bad[0] = 0;
    assert!(matches!(Btf::parse(&bad), Err(BtfError::Malformed(_))));
}

#[test]
fn hostile_lengths_are_rejected() {
    let mut bytes = sample();
    // type_len = u32::MAX
    bytes[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(Btf::parse(&bytes).is_err());
    // A struct that claims 65535 members in a short section.
    let mut b = Builder::new();
    b.head("s", 4, 0xffff, false, 8);
    assert!(Btf::parse(&b.bytes()).is_err());
}

#[test]
fn self_referencing_anonymous_member_terminates() {
    let mut b = Builder::new();
    // Type 1 is an anonymous union whose only member is itself.
    b.composite(5, "", 8, &[("", 1, 0)]);
    b.composite(4, "loop", 8, &[("", 1, 0)]);
    let btf = Btf::parse(&b.bytes()).expect("parse");
    assert!(btf.member_offset("loop", "x").is_err());
}

#[test]
fn running_kernel_layout_resolves() {
    let Ok(btf) = Btf::from_sys_fs() else {
        eprintln!("skipped: /sys/kernel/btf/vmlinux is not readable on this kernel");
        return;
    };
    // Members every supported kernel has; their values differ between kernels.
    for (structure, member) in [
        ("task_struct", "mm"),
        ("file", "f_path"),
        ("file", "f_inode"),
        ("dentry", "d_name.name"),
        ("mount", "mnt"),
        ("inode", "i_size"),
    ] {
        let offset = btf.member_offset(structure, member);
        assert!(offset.is_ok(), "{structure}.{member}: {offset:?}");
    }
    assert_eq!(btf.member_offset("path", "mnt"), Ok(0));
    assert_eq!(btf.member_offset("path", "dentry"), Ok(8));
}

/// A deterministic mutation fuzzer (xorshift): 100,000 corrupted copies of a valid
/// section, each parsed and every member looked up; any panic or hang fails the test.
#[test]
fn mutated_sections_never_panic() {
    let base = sample();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..100_000 {
        let mut bytes = base.clone();
        for _ in 0..1 + next() % 4 {
            let at = usize::try_from(next() % bytes.len() as u64).unwrap_or(0);
            bytes[at] = u8::try_from(next() & 0xff).unwrap_or(0);
        }
        if let Ok(btf) = Btf::parse(&bytes) {
            for (structure, member) in [("outer", "a"), ("outer", "b"), ("outer", "x.q"), ("outer", "nope")] {
                let _ = btf.member_offset(structure, member);
            }
        }
    }
}

//! Reading parts of an ELF file without loading it: the header, the section and
//! program header tables, named sections and symbols, each read with `pread` under a
//! cap. `object` supplies the ELF layouts and endianness; every offset, count and size
//! from the file is checked against the file before a byte is read or allocated.

use std::io;
use std::os::unix::fs::FileExt as _;

use object::Endianness;
use object::elf::{FileHeader32, FileHeader64};
use object::read::elf::{FileHeader, ProgramHeader as _, Rela as _, SectionHeader as _, Sym as _};

use crate::open::CheckedFile;

/// More sections than any real binary has (stripped Go binaries: ~30; CUDA libraries:
/// a few hundred).
const MAX_SECTIONS: usize = 4096;
const MAX_SEGMENTS: usize = 256;
/// The section name table.
const MAX_SHSTRTAB: u64 = 1024 * 1024;
/// A symbol table or its strings; larger ones are not searched.
pub(crate) const MAX_SYMTAB: u64 = 64 * 1024 * 1024;
/// Relocation tables searched for one relative pointer.
const MAX_RELA: u64 = 32 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ElfError {
    #[error("not an ELF file: {0}")]
    NotElf(&'static str),
    #[error("malformed ELF: {0}")]
    Malformed(String),
    #[error("read failed at offset {offset}: {source}")]
    Io {
        offset: u64,
        #[source]
        source: io::Error,
    },
}

#[derive(Clone, Debug)]
pub(crate) struct Section {
    pub(crate) name: String,
    kind: u32,
    pub(crate) addr: u64,
    pub(crate) offset: u64,
    pub(crate) size: u64,
    link: u32,
}

#[derive(Clone, Copy, Debug)]
struct Segment {
    vaddr: u64,
    offset: u64,
    filesz: u64,
}

/// A symbol's value (a virtual address), with its section index.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Symbol {
    pub(crate) value: u64,
    section: Option<usize>,
}

/// An opened ELF file: its tables, read once.
pub(crate) struct Elf<'f> {
    file: &'f CheckedFile,
    pub(crate) size: u64,
    endian: Endianness,
    is_64: bool,
    pub(crate) sections: Vec<Section>,
    segments: Vec<Segment>,
}

impl<'f> Elf<'f> {
    pub(crate) fn parse(file: &'f CheckedFile) -> Result<Self, ElfError> {
        let size = file.stamp.size;
        let mut head = [0u8; 64];
        let n = read_up_to(file, 0, &mut head)?;
        let head = &head[..n];
        if !head.starts_with(b"\x7fELF") {
            return Err(ElfError::NotElf("no ELF magic"));
        }
        match head.get(4) {
            Some(2) => tables::<FileHeader64<Endianness>>(file, size, head, true),
            Some(1) => tables::<FileHeader32<Endianness>>(file, size, head, false),
            _ => Err(ElfError::NotElf("unknown ELF class")),
        }
    }

    pub(crate) fn is_64(&self) -> bool {
        self.is_64
    }

    pub(crate) fn big_endian(&self) -> bool {
        self.endian == Endianness::Big
    }

    pub(crate) fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name && s.kind != object::elf::SHT_NOBITS.0)
    }

    /// Reads `len` bytes at `offset`; the range must lie in the file and `len` be at
    /// most `cap`.
    pub(crate) fn read(&self, offset: u64, len: u64, cap: u64) -> Result<Vec<u8>, ElfError> {
        read_checked(self.file, self.size, offset, len, cap)
    }

    /// Where the `len` bytes at virtual address `addr` are in the file: through the
    /// loadable segments, else through a section holding that address.
    pub(crate) fn offset_of(&self, addr: u64, len: u64, in_section: Option<usize>) -> Option<u64> {
        let within = |start: u64, size: u64| {
            addr >= start
                && addr.checked_add(len).zip(start.checked_add(size)).is_some_and(|(end, limit)| end <= limit)
        };
        if let Some(section) = in_section.and_then(|i| self.sections.get(i))
            && within(section.addr, section.size)
        {
            return Some(section.offset + (addr - section.addr));
        }
        if let Some(seg) = self.segments.iter().find(|s| within(s.vaddr, s.filesz)) {
            return Some(seg.offset + (addr - seg.vaddr));
        }
        self.sections
            .iter()
            .find(|s| s.addr != 0 && within(s.addr, s.size))
            .map(|s| s.offset + (addr - s.addr))
    }

    /// Reads `len` bytes at virtual address `addr`.
    pub(crate) fn read_virtual(
        &self,
        addr: u64,
        len: u64,
        cap: u64,
        in_section: Option<usize>,
    ) -> Option<Vec<u8>> {
        let offset = self.offset_of(addr, len, in_section)?;
        self.read(offset, len, cap).ok()
    }

    /// The first symbol called `name` in `.symtab`, else `.dynsym`.
    pub(crate) fn symbol(&self, name: &str) -> Result<Option<Symbol>, ElfError> {
        for kind in [object::elf::SHT_SYMTAB.0, object::elf::SHT_DYNSYM.0] {
            for table in self.sections.iter().filter(|s| s.kind == kind) {
                let found = if self.is_64 {
                    self.find_symbol::<FileHeader64<Endianness>>(table, name)?
                } else {
                    self.find_symbol::<FileHeader32<Endianness>>(table, name)?
                };
                if found.is_some() {
                    return Ok(found);
                }
            }
        }
        Ok(None)
    }

    fn find_symbol<H: FileHeader<Endian = Endianness>>(
        &self,
        table: &Section,
        name: &str,
    ) -> Result<Option<Symbol>, ElfError> {
        let Some(strings) = self.sections.get(table.link as usize) else {
            return Ok(None);
        };
        if table.size > MAX_SYMTAB || strings.size > MAX_SYMTAB {
            return Ok(None);
        }
        let syms = self.read(table.offset, table.size, MAX_SYMTAB)?;
        let strtab = self.read(strings.offset, strings.size, MAX_SYMTAB)?;
        let entry = size_of::<H::Sym>();
        let count = syms.len() / entry;
        let (syms, _) = object::pod::slice_from_bytes::<H::Sym>(&syms, count)
            .map_err(|()| ElfError::Malformed("symbol table".into()))?;
        for sym in syms {
            if c_string(&strtab, sym.st_name(self.endian) as usize) == Some(name.as_bytes()) {
                return Ok(Some(Symbol {
                    value: sym.st_value(self.endian).into(),
                    section: sym.st_shndx(self.endian).index().map(usize::from),
                }));
            }
        }
        Ok(None)
    }

    /// The section a symbol is defined in.
    pub(crate) fn symbol_section(symbol: &Symbol) -> Option<usize> {
        symbol.section
    }

    /// The addend of a relative relocation at `addr`: a position-independent binary
    /// stores pointers that way, with zero in the file.
    pub(crate) fn relative_target(&self, addr: u64) -> Result<Option<u64>, ElfError> {
        if !self.is_64 {
            return Ok(None);
        }
        for table in self.sections.iter().filter(|s| s.kind == object::elf::SHT_RELA.0 && s.size <= MAX_RELA)
        {
            let bytes = self.read(table.offset, table.size, MAX_RELA)?;
            type Rela = object::elf::Rela64<Endianness>;
            let count = bytes.len() / size_of::<Rela>();
            let (relas, _) = object::pod::slice_from_bytes::<Rela>(&bytes, count)
                .map_err(|()| ElfError::Malformed("relocation table".into()))?;
            if let Some(rela) = relas.iter().find(|r| r.r_offset(self.endian) == addr) {
                return Ok(u64::try_from(rela.r_addend(self.endian)).ok());
            }
        }
        Ok(None)
    }
}

fn tables<'f, H: FileHeader<Endian = Endianness>>(
    file: &'f CheckedFile,
    size: u64,
    head: &[u8],
    is_64: bool,
) -> Result<Elf<'f>, ElfError> {
    let header = H::parse(head).map_err(|_| ElfError::NotElf("unsupported ELF header"))?;
    let endian = header.endian().map_err(|_| ElfError::NotElf("unknown byte order"))?;
    let bad = |what: String| ElfError::Malformed(what);
    let shnum = usize::from(header.e_shnum(endian));
    let shoff: u64 = header.e_shoff(endian).into();
    if shnum == 0 && shoff != 0 {
        return Err(bad("extended section numbering (more than 65,279 sections)".into()));
    }
    if shnum > MAX_SECTIONS {
        return Err(bad(format!("{shnum} sections")));
    }
    let entry = size_of::<H::SectionHeader>();
    if shnum > 0 && usize::from(header.e_shentsize(endian)) != entry {
        return Err(bad("section header size".into()));
    }
    let table = read_checked(file, size, shoff, (shnum * entry) as u64, (MAX_SECTIONS * entry) as u64)?;
    let (headers, _) = object::pod::slice_from_bytes::<H::SectionHeader>(&table, shnum)
        .map_err(|()| bad("section headers".into()))?;
    let names = match header.e_shstrndx(endian).index().and_then(|i| headers.get(usize::from(i))) {
        Some(h) if h.sh_size(endian).into() <= MAX_SHSTRTAB => {
            read_checked(file, size, h.sh_offset(endian).into(), h.sh_size(endian).into(), MAX_SHSTRTAB)?
        }
        _ => Vec::new(),
    };
    let sections = headers
        .iter()
        .map(|h| Section {
            name: c_string(&names, h.sh_name(endian) as usize)
                .map(|n| String::from_utf8_lossy(n).into_owned())
                .unwrap_or_default(),
            kind: h.sh_type(endian).0,
            addr: h.sh_addr(endian).into(),
            offset: h.sh_offset(endian).into(),
            size: h.sh_size(endian).into(),
            link: h.sh_link(endian),
        })
        .collect();
    let segments = segments::<H>(file, size, header, endian)?;
    Ok(Elf { file, size, endian, is_64, sections, segments })
}

fn segments<H: FileHeader<Endian = Endianness>>(
    file: &CheckedFile,
    size: u64,
    header: &H,
    endian: Endianness,
) -> Result<Vec<Segment>, ElfError> {
    let phnum = usize::from(header.e_phnum(endian));
    let entry = size_of::<H::ProgramHeader>();
    if phnum == 0 || phnum > MAX_SEGMENTS || usize::from(header.e_phentsize(endian)) != entry {
        return Ok(Vec::new());
    }
    let table = read_checked(
        file,
        size,
        header.e_phoff(endian).into(),
        (phnum * entry) as u64,
        (MAX_SEGMENTS * entry) as u64,
    )?;
    let (headers, _) = object::pod::slice_from_bytes::<H::ProgramHeader>(&table, phnum)
        .map_err(|()| ElfError::Malformed("program headers".into()))?;
    Ok(headers
        .iter()
        .filter(|p| p.p_type(endian) == object::elf::PT_LOAD)
        .map(|p| Segment {
            vaddr: p.p_vaddr(endian).into(),
            offset: p.p_offset(endian).into(),
            filesz: p.p_filesz(endian).into(),
        })
        .collect())
}

/// The NUL-terminated string at `at` of a string table.
pub(crate) fn c_string(table: &[u8], at: usize) -> Option<&[u8]> {
    let rest = table.get(at..)?;
    let end = memchr::memchr(0, rest)?;
    Some(&rest[..end])
}

fn read_checked(file: &CheckedFile, size: u64, offset: u64, len: u64, cap: u64) -> Result<Vec<u8>, ElfError> {
    if len > cap {
        return Err(ElfError::Malformed(format!("a {len}-byte read (cap {cap})")));
    }
    if offset.checked_add(len).is_none_or(|end| end > size) {
        return Err(ElfError::Malformed(format!(
            "{len} bytes at offset {offset} lie outside the {size}-byte file"
        )));
    }
    let mut buf = vec![0u8; usize::try_from(len).map_err(|_| ElfError::Malformed("read size".into()))?];
    file.file.read_exact_at(&mut buf, offset).map_err(|source| ElfError::Io { offset, source })?;
    Ok(buf)
}

/// Reads what there is (up to `buf.len()`) at `offset`.
pub(crate) fn read_up_to(file: &CheckedFile, offset: u64, buf: &mut [u8]) -> Result<usize, ElfError> {
    let mut done = 0;
    while done < buf.len() {
        match file.file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(source) => return Err(ElfError::Io { offset, source }),
        }
    }
    Ok(done)
}

//! Runtime versions read from fake binaries: a copy of an existing ELF with the build
//! information added as a section by `objcopy` (as the Go linker or llama.cpp's
//! build-info would leave it), a fake site-packages tree, and hostile files.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use model_analysis::Root;
use model_analysis::runtime_version::{
    AdvisoryCheck, Runtime, VersionError, VersionSource, llama_cpp_version, ollama_version, vllm_version,
};

/// A small ELF executable to graft sections onto.
fn host_elf() -> Option<PathBuf> {
    ["/bin/true", "/usr/bin/true"].into_iter().map(PathBuf::from).find(|p| p.exists())
}

fn objcopy_available() -> bool {
    Command::new("objcopy").arg("--version").output().is_ok_and(|o| o.status.success())
}

fn tools() -> Option<PathBuf> {
    let elf = host_elf();
    if elf.is_none() || !objcopy_available() {
        eprintln!("SKIPPED: needs /bin/true and objcopy (binutils)");
        return None;
    }
    elf
}

fn objcopy(input: &Path, output: &Path, args: &[String]) {
    let result = Command::new("objcopy").args(args).arg(input).arg(output).output().expect("objcopy runs");
    assert!(result.status.success(), "objcopy {args:?}: {}", String::from_utf8_lossy(&result.stderr));
}

/// Go's inline build-info layout (Go 1.18+): header, then varint-prefixed version and
/// sentinel-framed module information.
fn go_buildinfo(go: &str, modinfo: &str) -> Vec<u8> {
    let mut out = b"\xff Go buildinf:".to_vec();
    out.extend_from_slice(&[8, 0x2]);
    out.resize(32, 0);
    let mut framed = vec![b'0'; 16];
    framed.extend_from_slice(modinfo.as_bytes());
    framed.push(b'\n');
    framed.extend_from_slice(&[b'1'; 16]);
    for s in [go.as_bytes(), framed.as_slice()] {
        put_uvarint(&mut out, s.len() as u64);
        out.extend_from_slice(s);
    }
    out
}

fn put_uvarint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push(u8::try_from(n & 0x7f).expect("7 bits") | 0x80);
        n >>= 7;
    }
    out.push(u8::try_from(n).expect("below 0x80"));
}

fn with_buildinfo(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let elf = host_elf().expect("checked");
    let blob = dir.join(format!("{name}.buildinfo"));
    std::fs::write(&blob, bytes).expect("write");
    let out = dir.join(name);
    objcopy(
        &elf,
        &out,
        &[
            format!("--add-section=.go.buildinfo={}", blob.display()),
            "--set-section-flags=.go.buildinfo=contents,readonly,data".into(),
        ],
    );
    out
}

fn applicable(check: &AdvisoryCheck) -> Vec<&'static str> {
    match check {
        AdvisoryCheck::Known { applicable, .. } => applicable.iter().map(|a| a.id).collect(),
        AdvisoryCheck::Unknown { reason } => panic!("unknown: {reason}"),
    }
}

#[test]
fn ollama_versions_from_go_build_info() {
    let Some(_) = tools() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let root = Root::host().expect("root");

    let old_modinfo = "path\tgithub.com/ollama/ollama\nmod\tgithub.com/ollama/ollama\t(devel)\t\nbuild\t-buildmode=exe\nbuild\t-ldflags=\"-w -s \\\"-X=github.com/ollama/ollama/version.Version=0.12.0\\\" \\\"-X=github.com/ollama/ollama/server.mode=release\\\"\"\nbuild\tvcs.revision=0123456789abcdef";
    let old = with_buildinfo(dir.path(), "ollama-old", &go_buildinfo("go1.24.0", old_modinfo));
    let found = ollama_version(&root, &old).expect("a version");
    assert_eq!(found.version.as_deref(), Some("0.12.0"));
    assert_eq!(found.source, Some(VersionSource::GoLdflags));
    assert_eq!(found.commit.as_deref(), Some("0123456789abcdef"));
    assert_eq!(found.go.as_ref().map(|g| g.go_version.as_str()), Some("go1.24.0"));
    assert_eq!(applicable(&found.advisories()), ["CVE-2026-7482", "CVE-2026-7020"]);

    let new_modinfo = "path\tgithub.com/ollama/ollama\nmod\tgithub.com/ollama/ollama\tv0.21.0\th1:abc=";
    let new = with_buildinfo(dir.path(), "ollama-new", &go_buildinfo("go1.25.1", new_modinfo));
    let found = ollama_version(&root, &new).expect("a version");
    assert_eq!(
        (found.version.as_deref(), found.source.clone()),
        (Some("0.21.0"), Some(VersionSource::GoModule))
    );
    assert!(applicable(&found.advisories()).is_empty());

    // A source build without -X: Ollama, version unknown, and unknown is not safe.
    let devel = with_buildinfo(
        dir.path(),
        "ollama-devel",
        &go_buildinfo("go1.25.1", "mod\tgithub.com/ollama/ollama\t(devel)\t"),
    );
    let found = ollama_version(&root, &devel).expect("build info");
    assert_eq!(found.version, None);
    assert!(matches!(found.advisories(), AdvisoryCheck::Unknown { .. }));

    // No section table entry: the magic is found by the bounded scan.
    let appended = dir.path().join("ollama-appended");
    let mut bytes = std::fs::read(host_elf().expect("checked")).expect("read");
    bytes.extend_from_slice(&go_buildinfo("go1.24.0", old_modinfo));
    std::fs::write(&appended, bytes).expect("write");
    assert_eq!(ollama_version(&root, &appended).expect("scanned").version.as_deref(), Some("0.12.0"));
}

#[test]
fn llama_cpp_build_number_and_commit_from_symbols() {
    let Some(elf) = tools() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let root = Root::host().expect("root");
    // build-info.cpp's objects: int LLAMA_BUILD_NUMBER at +0, the LLAMA_COMMIT
    // pointer at +8, the string it points to at +16; the section at 0x900000.
    let mut data = 5000i32.to_le_bytes().to_vec();
    data.resize(8, 0);
    data.extend_from_slice(&0x90_0010u64.to_le_bytes());
    data.extend_from_slice(b"b4f5e2a\0");
    let blob = dir.path().join("llama.data");
    std::fs::write(&blob, &data).expect("write");
    let server = dir.path().join("llama-server");
    objcopy(
        &elf,
        &server,
        &[
            format!("--add-section=.llamadata={}", blob.display()),
            "--set-section-flags=.llamadata=contents,alloc,load,data".into(),
            "--change-section-address=.llamadata=0x900000".into(),
            "--add-symbol=LLAMA_BUILD_NUMBER=.llamadata:0,global,object".into(),
            "--add-symbol=LLAMA_COMMIT=.llamadata:8,global,object".into(),
        ],
    );
    let found = llama_cpp_version(&root, &server).expect("read");
    assert_eq!(found.version.as_deref(), Some("b5000"));
    assert_eq!(found.commit.as_deref(), Some("b4f5e2a"));
    assert_eq!(applicable(&found.advisories()), ["CVE-2025-49847", "CVE-2025-53630", "CVE-2026-27940"]);
    // The plain host binary: an ELF without build info is not an error, and not safe.
    let bare = llama_cpp_version(&root, &elf).expect("read");
    assert_eq!(bare.version, None);
    assert!(matches!(bare.advisories(), AdvisoryCheck::Unknown { .. }));
}

#[test]
fn vllm_version_from_site_packages() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = Root::host().expect("root");
    let venv = dir.path().join("venv");
    let site = venv.join("lib/python3.11/site-packages");
    let dist = site.join("vllm-0.8.4.dist-info");
    std::fs::create_dir_all(&dist).expect("mkdir");
    std::fs::create_dir_all(venv.join("bin")).expect("mkdir");
    std::fs::create_dir_all(site.join("vllm")).expect("mkdir");
    std::fs::write(venv.join("bin/python3"), b"").expect("write");
    std::fs::write(site.join("vllm/_C.abi3.so"), b"").expect("write");
    std::fs::write(
        dist.join("METADATA"),
        "Metadata-Version: 2.1\nName: vllm\nVersion: 0.8.4\n\nVersion: 9.9.9 in the description\n",
    )
    .expect("write");
    for from in [venv.join("bin/python3"), site.join("vllm/_C.abi3.so")] {
        let found = vllm_version(&root, &from).expect("found");
        assert_eq!(found.version.as_deref(), Some("0.8.4"), "{}", from.display());
        assert_eq!(applicable(&found.advisories()), ["CVE-2025-47277", "CVE-2025-62164"]);
        assert!(matches!(found.source, Some(VersionSource::DistInfo { .. })));
    }
    // A METADATA that is a FIFO is refused before it is opened for reading.
    std::fs::remove_file(dist.join("METADATA")).expect("rm");
    let status = Command::new("mkfifo").arg(dist.join("METADATA")).status().expect("mkfifo");
    assert!(status.success());
    assert!(matches!(vllm_version(&root, &venv.join("bin/python3")), Err(VersionError::Open(_))));
    assert!(matches!(
        vllm_version(&root, &dir.path().join("nothing/bin/python")),
        Err(VersionError::NotFound { .. })
    ));
}

/// A minimal ELF64 file: header, a section name table and one `.go.buildinfo`
/// section header whose offset and size are given (and may lie).
fn handmade_elf(section_offset: u64, section_size: u64, shnum_override: Option<u16>) -> Vec<u8> {
    let names = b"\0.shstrtab\0.go.buildinfo\0";
    let names_at = 64u64;
    let table_at = names_at + names.len() as u64;
    let mut out = vec![0u8; 64];
    out[..4].copy_from_slice(b"\x7fELF");
    out[4] = 2; // 64-bit
    out[5] = 1; // little-endian
    out[6] = 1; // version
    out[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    out[18..20].copy_from_slice(&62u16.to_le_bytes()); // x86-64
    out[20..24].copy_from_slice(&1u32.to_le_bytes());
    out[40..48].copy_from_slice(&table_at.to_le_bytes()); // e_shoff
    out[52..54].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
    out[58..60].copy_from_slice(&64u16.to_le_bytes()); // e_shentsize
    out[60..62].copy_from_slice(&shnum_override.unwrap_or(3).to_le_bytes()); // e_shnum
    out[62..64].copy_from_slice(&1u16.to_le_bytes()); // e_shstrndx
    out.extend_from_slice(names);
    let section = |name: u32, kind: u32, offset: u64, size: u64| {
        let mut h = vec![0u8; 64];
        h[..4].copy_from_slice(&name.to_le_bytes());
        h[4..8].copy_from_slice(&kind.to_le_bytes());
        h[24..32].copy_from_slice(&offset.to_le_bytes());
        h[32..40].copy_from_slice(&size.to_le_bytes());
        h
    };
    out.extend(vec![0u8; 64]);
    out.extend(section(1, 3, names_at, names.len() as u64));
    out.extend(section(11, 1, section_offset, section_size));
    out
}

#[test]
fn hostile_binaries_fail_cleanly_and_quickly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = Root::host().expect("root");
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).expect("write");
        path
    };
    let started = Instant::now();

    // Sections pointing outside the file, or absurdly large, or too many of them.
    for (name, offset, size, shnum) in [
        ("outside", 1u64 << 40, 64u64, None),
        ("huge", 0, u64::MAX, None),
        ("wraps", u64::MAX - 10, 100, None),
        ("many", 0, 0, Some(60_000u16)),
    ] {
        let path = write(name, &handmade_elf(offset, size, shnum));
        let error = ollama_version(&root, &path).expect_err(name);
        assert!(matches!(error, VersionError::Elf { .. }), "{name}: {error}");
        assert!(llama_cpp_version(&root, &path).is_err() || shnum.is_none(), "{name}");
    }

    // Build info truncated, or with a varint length far beyond the data.
    let mut truncated = handmade_elf(0, 0, None);
    let at = truncated.len() as u64;
    truncated.extend_from_slice(b"\xff Go buildinf:\x08\x02");
    let patched = patch_buildinfo_section(&truncated, at, 16);
    let error = ollama_version(&root, &write("truncated", &patched)).expect_err("truncated");
    assert!(error.to_string().contains("truncated"), "{error}");
    let mut huge_varint = handmade_elf(0, 0, None);
    let at = huge_varint.len() as u64;
    huge_varint.extend_from_slice(&go_buildinfo("go1.22.0", "")[..32]);
    huge_varint.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]);
    let patched = patch_buildinfo_section(&huge_varint, at, 40);
    let error = ollama_version(&root, &write("varint", &patched)).expect_err("varint");
    assert!(error.to_string().contains("cap"), "{error}");

    // A 2 GiB sparse file: an ELF header, then nothing. Bounded scan, bounded memory.
    let sparse = dir.path().join("sparse");
    let file = std::fs::File::create(&sparse).expect("create");
    // Two sections: no .go.buildinfo, so the whole scan window is searched.
    std::os::unix::fs::FileExt::write_all_at(&file, &handmade_elf(0, 0, Some(2)), 0).expect("header");
    file.set_len(2 << 30).expect("sparse");
    let scan_started = Instant::now();
    assert!(matches!(ollama_version(&root, &sparse), Err(VersionError::NotFound { .. })));
    assert!(llama_cpp_version(&root, &sparse).expect("an ELF").version.is_none());
    let plain = dir.path().join("sparse-plain");
    std::fs::File::create(&plain).expect("create").set_len(2 << 30).expect("sparse");
    assert!(matches!(ollama_version(&root, &plain), Err(VersionError::Elf { .. })));
    eprintln!("2 GiB sparse file: {:?}", scan_started.elapsed());
    assert!(started.elapsed() < Duration::from_secs(20), "{:?}", started.elapsed());
}

/// Points the handmade ELF's `.go.buildinfo` section at `offset`..`offset+size`.
fn patch_buildinfo_section(elf: &[u8], offset: u64, size: u64) -> Vec<u8> {
    let mut out = elf.to_vec();
    let table_at =
        usize::try_from(u64::from_le_bytes(out[40..48].try_into().expect("8 bytes"))).expect("fits");
    let entry = table_at + 2 * 64;
    out[entry + 24..entry + 32].copy_from_slice(&offset.to_le_bytes());
    out[entry + 32..entry + 40].copy_from_slice(&size.to_le_bytes());
    out
}

#[test]
fn every_runtime_names_itself() {
    assert_eq!(
        [Runtime::Ollama.name(), Runtime::LlamaCpp.name(), Runtime::Vllm.name()],
        ["Ollama", "llama.cpp", "vLLM"]
    );
}

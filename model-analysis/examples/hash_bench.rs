//! SHA-256 of a whole file: which way of reading it keeps up with the disk (a benchmark,
//! not a test). Run in release:
//!
//! `cargo run --release -p model-analysis --example hash_bench [-- SIZE_MIB [ROUNDS]]`
//!
//! Hashes one file (default 1 GiB, in `TMPDIR`) several ways, each both from the page
//! cache and cold (the file's pages dropped with `POSIX_FADV_DONTNEED` first), and
//! prints a table: GB/s medians, beside the disk's own sequential read speed (`O_DIRECT`)
//! and SHA-256 over memory alone. `model_analysis::sha256_file` is the shipped variant;
//! the others are the candidates it was chosen from.
#![allow(clippy::print_stdout, reason = "a benchmark prints its figures")]

use std::fs::File;
use std::io::Write as _;
use std::os::fd::AsRawFd as _;
use std::os::unix::fs::{FileExt as _, OpenOptionsExt as _};
use std::time::Instant;

use model_analysis::{FileStamp, HashBudget, sha256_file};
use sha2::{Digest as _, Sha256};

const MIB: usize = 1 << 20;

/// One way of hashing an open file of the given length.
type HashVariant = fn(&File, u64) -> [u8; 32];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let size_mib: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(1024);
    let rounds: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(5);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("hash-bench.bin");
    write_file(&path, size_mib);
    let bytes = (size_mib * MIB) as f64;
    println!("SHA-256 of a {size_mib} MiB file, one thread; GB/s, median of {rounds} (min–max)\n");
    println!("| variant | cached | cold |\n|---|---:|---:|");
    let memory = median_gbps(rounds, bytes, || hash_memory(size_mib));
    println!("| SHA-256 over memory (no I/O) | {memory} | — |");
    let disk = median_gbps(rounds, bytes, || {
        drop_cache(&path);
        read_direct(&path);
    });
    println!("| disk, O_DIRECT 1 MiB reads, no hashing | — | {disk} |");
    let variants: [(&str, HashVariant); 5] = [
        ("pread 1 MiB (round one)", |f, n| pread(f, n, MIB, false)),
        ("pread 256 KiB", |f, n| pread(f, n, 256 << 10, false)),
        ("pread 256 KiB + POSIX_FADV_SEQUENTIAL", |f, n| pread(f, n, 256 << 10, true)),
        ("two 256 KiB buffers, preadv2 RWF_NOWAIT, WILLNEED ahead", |f, n| double_buffered(f, n)),
        ("model_analysis::sha256_file (shipped)", |f, _| shipped(f)),
    ];
    for (name, hash) in variants {
        let file = File::open(&path).expect("open");
        let len = file.metadata().expect("stat").len();
        let expected = hash(&file, len);
        let cached = median_gbps(rounds, bytes, || {
            assert_eq!(hash(&file, len), expected);
        });
        let cold = median_gbps(rounds, bytes, || {
            drop_cache(&path);
            assert_eq!(hash(&file, len), expected);
        });
        println!("| {name} | {cached} | {cold} |");
    }
}

fn write_file(path: &std::path::Path, size_mib: usize) {
    let mut file = File::create(path).expect("create");
    let mut block = vec![0u8; MIB];
    for (i, b) in block.iter_mut().enumerate() {
        *b = (i.wrapping_mul(2_654_435_761) >> 13) as u8;
    }
    for _ in 0..size_mib {
        file.write_all(&block).expect("write");
    }
    file.sync_all().expect("sync");
}

/// Median and range in GB/s of `rounds` runs of `f` over `bytes`.
fn median_gbps(rounds: usize, bytes: f64, mut f: impl FnMut()) -> String {
    let mut rates: Vec<f64> = (0..rounds)
        .map(|_| {
            let started = Instant::now();
            f();
            bytes / started.elapsed().as_secs_f64() / 1e9
        })
        .collect();
    rates.sort_by(f64::total_cmp);
    format!("{:.2} ({:.2}–{:.2})", rates[rates.len() / 2], rates[0], rates[rates.len() - 1])
}

/// Evicts the file's pages (clean after `sync_all`), so that the next read is the disk's.
fn drop_cache(path: &std::path::Path) {
    let file = File::open(path).expect("open");
    // SAFETY: a valid descriptor; advice only.
    unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
}

fn hash_memory(size_mib: usize) {
    let block: Vec<u8> = (0..MIB).map(|i| i as u8).collect();
    let mut hasher = Sha256::new();
    for _ in 0..size_mib {
        hasher.update(&block);
    }
    std::hint::black_box(hasher.finalize());
}

fn read_direct(path: &std::path::Path) {
    let file = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_DIRECT).open(path).expect("open");
    // O_DIRECT wants an aligned buffer: a page-aligned window of a larger allocation.
    let mut raw = vec![0u8; MIB + 4096];
    let start = raw.as_ptr().align_offset(4096);
    let buf = &mut raw[start..start + MIB];
    let mut offset = 0u64;
    while let Ok(n) = file.read_at(buf, offset) {
        if n == 0 {
            break;
        }
        offset += n as u64;
    }
}

fn pread(file: &File, len: u64, chunk: usize, sequential: bool) -> [u8; 32] {
    if sequential {
        // SAFETY: a valid descriptor; advice only.
        unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_SEQUENTIAL) };
    }
    let mut buf = vec![0u8; chunk];
    let mut hasher = Sha256::new();
    let mut offset = 0u64;
    while offset < len {
        let n = file.read_at(&mut buf, offset).expect("read");
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        offset += n as u64;
    }
    hasher.finalize().into()
}

/// Two buffers, one thread: the next chunk is asked for with `RWF_NOWAIT` (served only
/// from the page cache, never blocking); when it is not there yet, a `WILLNEED` hint
/// keeps the disk busy ahead of the hashing, and a blocking read takes what is missing.
fn double_buffered(file: &File, len: u64) -> [u8; 32] {
    const CHUNK: usize = 256 << 10;
    const AHEAD: i64 = 8 << 20;
    let fd = file.as_raw_fd();
    let mut buffers = [vec![0u8; CHUNK], vec![0u8; CHUNK]];
    let mut hasher = Sha256::new();
    let mut offset = 0u64;
    let mut hinted = 0i64;
    let mut current = 0;
    let mut ready = read_chunk(fd, &mut buffers[current], offset, &mut hinted, AHEAD);
    while ready > 0 {
        let next_offset = offset + ready as u64;
        let (this, next) = buffers.split_at_mut(1);
        let (now, then) = if current == 0 { (&this[0], &mut next[0]) } else { (&next[0], &mut this[0]) };
        let following =
            if next_offset < len { read_chunk(fd, then, next_offset, &mut hinted, AHEAD) } else { 0 };
        hasher.update(&now[..ready]);
        offset = next_offset;
        ready = following;
        current ^= 1;
    }
    hasher.finalize().into()
}

fn read_chunk(fd: i32, buf: &mut [u8], offset: u64, hinted: &mut i64, ahead: i64) -> usize {
    let at = offset as i64;
    if at + ahead / 2 > *hinted {
        // SAFETY: a valid descriptor; advice only.
        unsafe { libc::posix_fadvise(fd, at, ahead, libc::POSIX_FADV_WILLNEED) };
        *hinted = at + ahead;
    }
    let iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    // SAFETY: `iov` describes `buf`, which outlives the call.
    let n = unsafe { libc::preadv2(fd, &iov, 1, at, libc::RWF_NOWAIT) };
    if n > 0 && n as usize == buf.len() {
        return n as usize;
    }
    let have = n.max(0) as usize;
    // SAFETY: as above, for the rest of `buf`.
    let rest =
        unsafe { libc::pread(fd, buf[have..].as_mut_ptr().cast(), buf.len() - have, at + have as i64) };
    have + rest.max(0) as usize
}

fn shipped(file: &File) -> [u8; 32] {
    let stamp = FileStamp::of(file).expect("stat");
    sha256_file(file, &stamp, &HashBudget::default()).expect("hash")
}

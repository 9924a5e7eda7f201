//! Throughput of the pickle analysis on 64 MiB pickles (a benchmark, not a test):
//! `cargo run --release -p model-analysis --example pickle_bench`
//!
//! Three shapes, each just under the 64 MiB pickle budget, analysed through
//! `analyze_path` with the default limits (format sniffing included):
//! 1. opcode-dense protocol 4: a list of 9 million small items (ints, short strings,
//!    floats, None, memo reads), appended in batches of 1000;
//! 2. protocol 0 text: `INT` lines and `APPEND`s, every number parsed;
//! 3. payload-heavy protocol 4: 64 tensors' worth of `BINBYTES8` (skipped, not read).
#![allow(clippy::print_stdout, reason = "a benchmark prints its figures")]

use std::fs;
use std::time::{Duration, Instant};

use model_analysis::{Limits, Root, Severity, analyze_path};

const TARGET: usize = 64 * 1024 * 1024 - 4096;

fn dense() -> Vec<u8> {
    let mut p = vec![0x80, 0x04, b']', 0x94];
    let mut i: u32 = 0;
    while p.len() < TARGET - 64 {
        p.push(b'(');
        for _ in 0..1000 {
            match i % 6 {
                0 => p.extend_from_slice(&[b'K', (i % 251) as u8]),
                1 => p.extend_from_slice(b"\x8c\x04abcd"),
                2 => {
                    p.push(b'G');
                    p.extend_from_slice(&f64::from(i).to_be_bytes());
                }
                3 => p.push(b'N'),
                // One memo write per batch: the memo cap (262,144) is a budget.
                4 if i % 1000 == 4 => p.extend_from_slice(b"\x8c\x03xyz\x94"),
                4 => p.extend_from_slice(b"\x8c\x03xyz"),
                _ => p.extend_from_slice(&[b'h', 0]),
            }
            i = i.wrapping_add(1);
        }
        p.push(b'e');
    }
    p.push(b'.');
    p
}

fn text() -> Vec<u8> {
    let mut p = b"(lp0\n".to_vec();
    let mut i: u64 = 0;
    while p.len() < TARGET - 64 {
        p.extend_from_slice(format!("I{}\na", i * 7919).as_bytes());
        i += 1;
    }
    p.push(b'.');
    p
}

fn payloads() -> Vec<u8> {
    let mut p = vec![0x80, 0x04, b']'];
    let chunk = (TARGET - 4096) / 64;
    for _ in 0..64 {
        p.push(0x8e);
        p.extend_from_slice(&(chunk as u64).to_le_bytes());
        p.resize(p.len() + chunk, 0x3f);
        p.push(b'a');
    }
    p.push(b'.');
    p
}

/// CPU time this thread has run (`/proc/self/schedstat`, nanoseconds): unlike wall
/// time, it does not count the time other processes on a busy machine take.
fn cpu_time() -> Duration {
    let text = fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    let ns = text.split_whitespace().next().and_then(|n| n.parse().ok()).unwrap_or(0);
    Duration::from_nanos(ns)
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = Root::host().expect("root");
    let limits = Limits::default();
    for (name, bytes) in [
        ("opcode-dense protocol 4", dense()),
        ("protocol 0 text", text()),
        ("BINBYTES8 payloads", payloads()),
    ] {
        let path = dir.path().join("bench.pkl");
        fs::write(&path, &bytes).expect("write");
        let mut samples = Vec::new();
        let mut cpu = Vec::new();
        let mut last = None;
        for _ in 0..5 {
            let (started, cpu_started) = (Instant::now(), cpu_time());
            let (report, _) = analyze_path(&root, &path, &limits).expect("analyse");
            samples.push(started.elapsed());
            cpu.push(cpu_time().saturating_sub(cpu_started));
            last = Some(report);
        }
        let report = last.expect("a run");
        let time = median(samples);
        let cpu = median(cpu);
        let opcodes: u64 = report.pickle.as_ref().map_or(0, |p| p.streams.iter().map(|s| s.opcodes).sum());
        let mib = bytes.len() as f64 / f64::from(1 << 20);
        let rate = if cpu < Duration::from_millis(1) {
            "under 1 ms: payloads are seeked over".to_owned()
        } else {
            format!(
                "{:.0} MiB/s, {:.1} M opcodes/s of CPU time",
                mib / cpu.as_secs_f64(),
                opcodes as f64 / cpu.as_secs_f64() / 1e6
            )
        };
        println!(
            "{name}: {mib:.1} MiB, {opcodes} opcodes in {:.0} ms wall, {:.0} ms CPU: {rate}; max severity {:?}",
            time.as_secs_f64() * 1000.0,
            cpu.as_secs_f64() * 1000.0,
            report.max_severity(),
        );
        assert!(report.max_severity() < Some(Severity::Medium), "{:?}", report.findings);
    }
}

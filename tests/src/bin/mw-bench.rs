//! The workloads of `cargo xtask bench`: one operation repeated with raw libc calls, so
//! that what is timed is the syscalls and the hooks on them, not Rust's I/O layers.
//!
//! - `mw-bench open N PATH`   open + close of a small file;
//! - `mw-bench mmap N PATH`   mmap + munmap of one page of an open small file;
//! - `mw-bench exec N`        fork + exec `/bin/true` + wait;
//! - `mw-bench bind N`        socket + bind 127.0.0.1:0 + listen + close;
//! - `mw-bench ioctl N`       `FIONREAD` on a pipe: the ioctl hook's cost for a process
//!   that never opened an accelerator;
//! - `mw-bench storm SECS PROCS PATH` PROCS processes, each doing open + mmap + munmap +
//!   close of PATH until SECS elapse (two candidate records per round);
//! - `mw-bench paced RATE SECS PATH` open + close of PATH at RATE per second for SECS
//!   (one candidate record each), on a steady clock: a millisecond's opens at each tick.
//!
//! Prints one line of `key=value` pairs (`ns_per_op=...`, or the storm's counts) and
//! exits 0; any failed syscall exits 1 naming it.

use std::{
    ffi::CString,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or_else(|| usage());
    let count = |i: usize| arg(i).parse::<u64>().unwrap_or_else(|_| usage());
    match arg(0) {
        "storm" => storm(arg(1), count(2), arg(3)),
        "storm-worker" => {
            let secs: f64 = arg(1).parse().unwrap_or_else(|_| usage());
            storm_worker(Duration::from_secs_f64(secs), &c_path(arg(2)));
        }
        "paced" => {
            let secs: f64 = arg(2).parse().unwrap_or_else(|_| usage());
            paced(count(1), Duration::from_secs_f64(secs), &c_path(arg(3)));
        }
        "open" => timed("open", count(1), open_close(&c_path(arg(2)))),
        "mmap" => timed("mmap", count(1), map_unmap(&c_path(arg(2)))),
        "exec" => timed("exec", count(1), fork_exec()),
        "bind" => timed("bind", count(1), bind_listen),
        "ioctl" => timed("ioctl", count(1), pipe_ioctl()),
        _ => usage(),
    }
}

fn usage() -> ! {
    eprintln!(
        "usage: mw-bench open|mmap N PATH | exec|bind|ioctl N | storm SECS PROCS PATH | paced RATE SECS PATH"
    );
    std::process::exit(2)
}

fn c_path(path: &str) -> CString {
    CString::new(path).unwrap_or_else(|_| usage())
}

/// Runs `op` a tenth of `n` times untimed (caches, page tables, lazy binding), then `n`
/// times timed, and prints the mean.
fn timed(name: &str, n: u64, mut op: impl FnMut()) {
    for _ in 0..(n / 10).max(1) {
        op();
    }
    let start = Instant::now();
    for _ in 0..n {
        op();
    }
    let ns = start.elapsed().as_nanos() as f64 / n.max(1) as f64;
    print_line(&format!("op={name} n={n} ns_per_op={ns:.1}"));
}

fn fail(what: &str) -> ! {
    eprintln!("mw-bench: {what}: {}", std::io::Error::last_os_error());
    std::process::exit(1)
}

fn open_close(path: &CString) -> impl FnMut() + '_ {
    move || {
        // SAFETY: a valid C string; the descriptor is closed at once.
        let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
        if fd < 0 {
            fail("open");
        }
        // SAFETY: fd was just opened.
        unsafe { libc::close(fd) };
    }
}

fn open_fd(path: &CString) -> i32 {
    // SAFETY: a valid C string.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        fail("open");
    }
    fd
}

/// One page, read-only, private: the mapping a loader makes of a model's header.
fn map_page(fd: i32) {
    // SAFETY: a fresh mapping of an open file, unmapped at once and never dereferenced.
    unsafe {
        let addr = libc::mmap(std::ptr::null_mut(), 4096, libc::PROT_READ, libc::MAP_PRIVATE, fd, 0);
        if addr == libc::MAP_FAILED {
            fail("mmap");
        }
        libc::munmap(addr, 4096);
    }
}

fn map_unmap(path: &CString) -> impl FnMut() {
    let fd = open_fd(path);
    move || map_page(fd)
}

fn fork_exec() -> impl FnMut() {
    let program = c_path("/bin/true");
    let argv = [program.as_ptr(), std::ptr::null()];
    move || {
        // SAFETY: the child only calls async-signal-safe functions (execv, _exit) on
        // memory prepared before the fork.
        unsafe {
            let pid = libc::fork();
            if pid == 0 {
                libc::execv(program.as_ptr(), argv.as_ptr());
                libc::_exit(127);
            }
            if pid < 0 {
                fail("fork");
            }
            let mut status = 0;
            if libc::waitpid(pid, &raw mut status, 0) != pid || status != 0 {
                fail("exec /bin/true");
            }
        }
    }
}

fn pipe_ioctl() -> impl FnMut() {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        fail("pipe2");
    }
    move || {
        let mut queued: libc::c_int = 0;
        // SAFETY: FIONREAD writes one int into `queued`.
        if unsafe { libc::ioctl(fds[0], libc::FIONREAD, &raw mut queued) } != 0 {
            fail("ioctl FIONREAD");
        }
    }
}

fn bind_listen() {
    let address = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes([127, 0, 0, 1]) },
        sin_zero: [0; 8],
    };
    // SAFETY: a socket of our own, closed at once; `address` outlives the call.
    unsafe {
        let socket = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if socket < 0 {
            fail("socket");
        }
        let len = size_of::<libc::sockaddr_in>() as libc::socklen_t;
        if libc::bind(socket, (&raw const address).cast(), len) != 0 {
            fail("bind");
        }
        if libc::listen(socket, 1) != 0 {
            fail("listen");
        }
        libc::close(socket);
    }
}

/// `procs` workers at once (this executable again, `storm-worker`), so that the storm is
/// not limited to one core; prints their summed counts.
fn storm(secs: &str, procs: u64, path: &str) {
    let exe = std::env::current_exe().unwrap_or_else(|_| fail("current_exe"));
    let workers: Vec<_> = (0..procs.max(1))
        .map(|_| {
            Command::new(&exe)
                .args(["storm-worker", secs, path])
                .stdout(Stdio::piped())
                .spawn()
                .unwrap_or_else(|_| fail("spawning a storm worker"))
        })
        .collect();
    let (mut pairs, mut elapsed_ns) = (0u64, 0u64);
    for worker in workers {
        let out = worker.wait_with_output().unwrap_or_else(|_| fail("waiting for a storm worker"));
        if !out.status.success() {
            eprintln!("mw-bench: a storm worker failed: {}", out.status);
            std::process::exit(1);
        }
        let line = String::from_utf8_lossy(&out.stdout);
        let field = |key: &str| {
            line.split_whitespace()
                .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=')?.parse::<u64>().ok())
                .unwrap_or(0)
        };
        pairs += field("opens");
        elapsed_ns = elapsed_ns.max(field("elapsed_ns"));
    }
    print_line(&format!("op=storm procs={procs} opens={pairs} maps={pairs} elapsed_ns={elapsed_ns}"));
}

/// As many open + mmap pairs of `path` as fit in `duration`: two candidate records
/// each when `path` is model-like.
fn storm_worker(duration: Duration, path: &CString) {
    let start = Instant::now();
    let mut pairs: u64 = 0;
    loop {
        // The clock is read every 256 pairs: a vDSO call, but not free.
        for _ in 0..256 {
            let fd = open_fd(path);
            map_page(fd);
            // SAFETY: fd was just opened.
            unsafe { libc::close(fd) };
        }
        pairs += 256;
        if start.elapsed() >= duration {
            break;
        }
    }
    let elapsed = start.elapsed();
    print_line(&format!("op=storm opens={pairs} maps={pairs} elapsed_ns={}", elapsed.as_nanos()));
}

/// `rate` opens + closes of `path` per second for `duration`: at each millisecond tick,
/// the opens due by then (absolute deadlines, so a late tick catches up instead of
/// drifting). The kernel stamps each record at the syscall; the subscriber measures
/// from there.
fn paced(rate: u64, duration: Duration, path: &CString) {
    let tick = Duration::from_millis(1);
    let start = Instant::now();
    let mut opens: u64 = 0;
    let mut open_close = open_close(path);
    while start.elapsed() < duration {
        let due = (start.elapsed().as_secs_f64() * rate as f64) as u64;
        while opens < due {
            open_close();
            opens += 1;
        }
        let next = start + tick * u32::try_from(start.elapsed().as_millis() + 1).unwrap_or(u32::MAX);
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    let elapsed = start.elapsed();
    print_line(&format!("op=paced rate={rate} opens={opens} elapsed_ns={}", elapsed.as_nanos()));
}

fn print_line(line: &str) {
    #[expect(clippy::print_stdout, reason = "the harness reads this line")]
    {
        println!("{line}");
    }
}

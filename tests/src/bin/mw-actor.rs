//! A stand-in for the programs the sensor watches. Copied under any name (`ollama`,
//! `llama-server`) and run with any arguments, it performs the actions listed in
//! `MW_ACTOR` (`;`-separated) with real syscalls:
//!
//! - `open:PATH`            open read-only and keep the descriptor;
//! - `openmap:PATH`         open, then mmap the first MiB read-only, keep both;
//! - `listen:ADDR`          bind and listen on a TCP address (`127.0.0.1:11434`);
//! - `reopen:PATH:N`        open and close PATH N times;
//! - `reopenfor:PATH:MS`    open and close PATH as fast as possible for MS milliseconds;
//! - `churn:SRC:DST:MS`     for MS milliseconds, copy every file of SRC into DST under a
//!   new name and open it (a flood of never-seen files; the last rounds are kept on disk,
//!   older copies deleted);
//! - `ioctl:PATH:RATE:MS`  open PATH (a device) and issue RATE ioctls per second on it
//!   for MS milliseconds (their result does not matter: the call is what is counted);
//! - `dupover:PATH`         open PATH with `O_PATH` and `dup2` it over the descriptor of
//!   the last file opened (the descriptor the kernel reported now leads elsewhere);
//! - `spawn:ACTIONS`        run this program again as a child with other actions (`,`
//!   separates the child's actions);
//! - `openat:DIR:NAME`      open DIR, then NAME relative to it with `openat(2)`;
//! - `maplast`              mmap the most recently opened file;
//! - `closelast`            close the most recently opened file (its mappings stay);
//! - `unlink:PATH`, `rename:FROM:TO`  change the file system under open files;
//! - `sleep:MS`             wait.
//!
//! It exits 0 when every action succeeded; any failure exits 1 with a message.

use std::{ffi::CString, net::TcpListener, os::fd::AsRawFd as _, time::Duration};

fn main() {
    let script = std::env::var("MW_ACTOR").unwrap_or_default();
    let mut keep_files = Vec::new();
    let mut keep_listeners = Vec::new();
    for action in script.split(';').filter(|a| !a.is_empty()) {
        if let Err(error) = perform(action, &mut keep_files, &mut keep_listeners) {
            eprintln!("mw-actor: {action}: {error}");
            std::process::exit(1);
        }
    }
}

fn perform(
    action: &str,
    files: &mut Vec<std::fs::File>,
    listeners: &mut Vec<TcpListener>,
) -> std::io::Result<()> {
    let (verb, arg) = action.split_once(':').unwrap_or((action, ""));
    match verb {
        "open" => files.push(std::fs::File::open(arg)?),
        "openmap" => {
            let file = std::fs::File::open(arg)?;
            map(&file)?;
            files.push(file);
        }
        "openat" => {
            let (dir, name) = arg.rsplit_once(':').ok_or_else(|| std::io::Error::other("openat:DIR:NAME"))?;
            let dir = std::fs::File::open(dir)?;
            let name = CString::new(name).map_err(std::io::Error::other)?;
            // SAFETY: a valid directory descriptor and C string.
            let fd =
                unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // SAFETY: a descriptor we own from here on.
            files.push(unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) });
        }
        "maplast" => map(files.last().ok_or_else(|| std::io::Error::other("nothing opened yet"))?)?,
        "closelast" => drop(files.pop().ok_or_else(|| std::io::Error::other("nothing opened yet"))?),
        "unlink" => std::fs::remove_file(arg)?,
        "rename" => {
            let (from, to) = arg.split_once(':').ok_or_else(|| std::io::Error::other("rename:FROM:TO"))?;
            std::fs::rename(from, to)?;
        }
        "listen" => listeners.push(TcpListener::bind(arg)?),
        "reopen" => {
            let (path, count) = arg.rsplit_once(':').ok_or_else(|| std::io::Error::other("reopen:PATH:N"))?;
            let count: usize = count.parse().map_err(std::io::Error::other)?;
            let path = CString::new(path).map_err(std::io::Error::other)?;
            for _ in 0..count {
                // Raw open/close: no allocation between syscalls, so floods are fast.
                // SAFETY: a valid C string; the descriptor is closed at once.
                let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
                if fd < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // SAFETY: fd was just opened.
                unsafe { libc::close(fd) };
            }
        }
        "spawn" => {
            let status = std::process::Command::new(std::env::current_exe()?)
                .env("MW_ACTOR", arg.replace(',', ";"))
                .status()?;
            if !status.success() {
                return Err(std::io::Error::other(format!("child failed: {status}")));
            }
        }
        "reopenfor" => {
            let (path, ms) =
                arg.rsplit_once(':').ok_or_else(|| std::io::Error::other("reopenfor:PATH:MS"))?;
            let until =
                std::time::Instant::now() + Duration::from_millis(ms.parse().map_err(std::io::Error::other)?);
            let path = CString::new(path).map_err(std::io::Error::other)?;
            while std::time::Instant::now() < until {
                for _ in 0..1000 {
                    // SAFETY: a valid C string; the descriptor is closed at once.
                    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
                    if fd < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    // SAFETY: fd was just opened.
                    unsafe { libc::close(fd) };
                }
            }
        }
        "churn" => churn(arg)?,
        "ioctl" => ioctls(arg)?,
        "dupover" => {
            let target = files.last().ok_or_else(|| std::io::Error::other("nothing opened yet"))?.as_raw_fd();
            let path = CString::new(arg).map_err(std::io::Error::other)?;
            // SAFETY: a valid C string; O_PATH opens nothing.
            let decoy = unsafe { libc::open(path.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
            // SAFETY: both descriptors are ours.
            if decoy < 0 || unsafe { libc::dup2(decoy, target) } < 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        "sleep" => std::thread::sleep(Duration::from_millis(arg.parse().map_err(std::io::Error::other)?)),
        other => return Err(std::io::Error::other(format!("unknown action {other}"))),
    }
    Ok(())
}

/// `PATH:RATE:MS`: a steady rate of ioctls on a device.
fn ioctls(arg: &str) -> std::io::Result<()> {
    let mut parts = arg.rsplitn(3, ':');
    let (Some(ms), Some(rate), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(std::io::Error::other("ioctl:PATH:RATE:MS"));
    };
    let rate: u64 = rate.parse().map_err(std::io::Error::other)?;
    let ms: u64 = ms.parse().map_err(std::io::Error::other)?;
    let device = std::fs::File::open(path)?;
    let started = std::time::Instant::now();
    let total = rate * ms / 1000;
    for n in 0..total {
        // SAFETY: an ioctl on our own descriptor with a null argument; the device
        // refuses an unknown request (ENOTTY), which is fine.
        unsafe { libc::ioctl(device.as_raw_fd(), 0x5401, std::ptr::null_mut::<libc::c_void>()) };
        let due = started + Duration::from_micros(n * 1_000_000 / rate.max(1));
        if let Some(wait) = due.checked_duration_since(std::time::Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    Ok(())
}

/// `SRC:DST:MS`: copies of SRC's files under new names in DST, opened and deleted.
fn churn(arg: &str) -> std::io::Result<()> {
    let mut parts = arg.splitn(3, ':');
    let (Some(src), Some(dst), Some(ms)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(std::io::Error::other("churn:SRC:DST:MS"));
    };
    let seeds: Vec<(String, Vec<u8>)> = std::fs::read_dir(src)?
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.to_owned(), std::fs::read(e.path()).ok()?)))
        .collect();
    let until = std::time::Instant::now() + Duration::from_millis(ms.parse().map_err(std::io::Error::other)?);
    // The last few rounds stay on disk (for the sensor to read); older copies go.
    let keep = seeds.len() * 4;
    let mut kept = std::collections::VecDeque::new();
    let mut n = 0u64;
    while std::time::Instant::now() < until {
        for (name, bytes) in &seeds {
            n += 1;
            let path = std::path::Path::new(dst).join(format!("{n}-{name}"));
            std::fs::write(&path, bytes)?;
            drop(std::fs::File::open(&path)?);
            kept.push_back(path);
            if kept.len() > keep
                && let Some(old) = kept.pop_front()
            {
                std::fs::remove_file(old)?;
            }
        }
    }
    for path in kept {
        std::fs::remove_file(path)?;
    }
    Ok(())
}

fn map(file: &std::fs::File) -> std::io::Result<()> {
    // SAFETY: a fresh read-only private mapping of an open file; never unmapped, never
    // dereferenced (the sensor watches the syscall, not the bytes).
    let addr = unsafe {
        libc::mmap(std::ptr::null_mut(), 1 << 20, libc::PROT_READ, libc::MAP_PRIVATE, file.as_raw_fd(), 0)
    };
    if addr == libc::MAP_FAILED { Err(std::io::Error::last_os_error()) } else { Ok(()) }
}

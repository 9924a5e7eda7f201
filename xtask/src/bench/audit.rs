//! Linux audit as the comparison point: an auditd of our own (with its log in the
//! bench's directory) and one rule on the syscalls modelwatch watches. The audit state
//! found at start (enabled flag, backlog, failure mode, rules) is restored when the
//! session is dropped.
//!
//! NB: once audit has been enabled on a kernel, every task forked afterwards carries an
//! audit context and pays `__audit_syscall_exit`/`audit_reset_context` on every syscall,
//! rules or not, until reboot (kernel/auditsc.c, `audit_alloc` and `audit_ever_enabled`);
//! measured here: about 3-5% of an open+close. The other configurations therefore run
//! under `-a never,task` ([`Quiet`]), which makes `audit_alloc` give new tasks no
//! context: the machine as it is before audit was ever enabled.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    fs,
    os::unix::fs::PermissionsExt as _,
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

use super::{daemon::Daemon, host};

/// The key of the bench's rule; `auditctl -D -k` removes exactly these.
const RULE_KEY: &str = "modelwatch-bench";

/// What modelwatch watches: opens, maps, exec, and listeners (bind + listen).
const RULE: [&str; 8] = [
    "-a",
    "always,exit",
    "-F",
    "arch=b64",
    "-S",
    "openat,openat2,open,mmap,execve,bind,listen",
    "-k",
    RULE_KEY,
];

/// Debian's packaged rules (`/etc/audit/rules.d/audit.rules`) raise the backlog to 8192:
/// auditd as installed, not the kernel's 64 at which processes wait for the daemon.
const PACKAGED_BACKLOG: &str = "8192";

/// `auditctl -s` settings restored at the end, with the flag that sets each.
const RESTORED: [(&str, &str); 5] = [
    ("enabled", "-e"),
    ("failure", "-f"),
    ("rate_limit", "-r"),
    ("backlog_limit", "-b"),
    ("backlog_wait_time", "--backlog_wait_time"),
];

struct AuditState {
    settings: BTreeMap<String, String>,
    rules: String,
}

/// auditd running with the bench's rule; undone when dropped.
pub(crate) struct AuditSession {
    found: AuditState,
    daemon: Option<Daemon>,
    rule_loaded: bool,
    /// Put `-a never,task` back once done ([`Quiet`] was engaged).
    requiet: bool,
}

/// The task rule that keeps new tasks free of an audit context, when the machine has no
/// audit rules of its own (with rules, audit is in use and the bench leaves it alone).
pub(crate) struct Quiet {
    pub(crate) engaged: bool,
}

/// `auditctl <op> never,task` (a task rule takes no key: it is removed by its text,
/// and only ever added when the machine had no rules at all).
fn quiet_rule(op: &str) -> [&str; 2] {
    [op, "never,task"]
}

impl Quiet {
    pub(crate) fn engage() -> anyhow::Result<Self> {
        let state = read_state()?;
        if !state.rules.trim().eq_ignore_ascii_case("no rules") {
            eprintln!("bench: audit rules are loaded on this machine; every configuration runs with them");
            return Ok(Self { engaged: false });
        }
        auditctl(&quiet_rule("-a"))?;
        Ok(Self { engaged: true })
    }
}

impl Drop for Quiet {
    fn drop(&mut self) {
        if self.engaged
            && let Err(error) = auditctl(&quiet_rule("-d"))
        {
            eprintln!("bench: removing the audit task rule failed: {error:#}; run `auditctl -d never,task`");
        }
    }
}

pub(crate) fn start(dir: &Path, quiet: bool) -> anyhow::Result<AuditSession> {
    if let Some(pid) = host::pids_named("auditd").first() {
        bail!(
            "auditd is already running (pid {pid}); the bench only measures an auditd it starts \
             itself: stop it, or pass --no-auditd"
        );
    }
    if quiet {
        auditctl(&quiet_rule("-d"))?;
    }
    let found = read_state()?;
    let conf_dir = dir.join("auditd");
    write_config(&conf_dir)?;
    let log = fs::File::create(conf_dir.join("auditd.out"))?;
    let mut session = AuditSession { found, daemon: None, rule_loaded: false, requiet: quiet };
    let mut command = Command::new("auditd");
    command.arg("-n").arg("-c").arg(&conf_dir).stdout(log.try_clone()?).stderr(log);
    let daemon = session.daemon.insert(Daemon::spawn("auditd", &mut command, libc::SIGTERM)?);
    let pid = daemon.pid().to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    while read_state()?.settings.get("pid") != Some(&pid) {
        daemon.check_running()?;
        if Instant::now() > deadline {
            bail!("auditd (pid {pid}) did not register with the kernel within 10 s");
        }
        super::signals::sleep(Duration::from_millis(50))?;
    }
    auditctl(&["-b", PACKAGED_BACKLOG])?;
    session.rule_loaded = true;
    auditctl(&RULE)?;
    Ok(session)
}

impl AuditSession {
    pub(crate) fn check_running(&mut self) -> anyhow::Result<()> {
        self.daemon.as_mut().map_or(Ok(()), Daemon::check_running)
    }
}

/// Debian's `auditd.conf` with the log in the bench's directory and no plugins, so
/// nothing outside that directory changes.
fn write_config(conf_dir: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(conf_dir.join("plugins.d"))?;
    fs::set_permissions(conf_dir, fs::Permissions::from_mode(0o700))?;
    let packaged = fs::read_to_string("/etc/audit/auditd.conf").context("reading /etc/audit/auditd.conf")?;
    let mut config = String::new();
    for line in packaged.lines() {
        let key = line.split('=').next().unwrap_or("").trim();
        let _ = match key {
            "log_file" => writeln!(config, "log_file = {}", conf_dir.join("audit.log").display()),
            "plugin_dir" => writeln!(config, "plugin_dir = {}", conf_dir.join("plugins.d").display()),
            _ => writeln!(config, "{line}"),
        };
    }
    let path = conf_dir.join("auditd.conf");
    fs::write(&path, config)?;
    // auditd refuses a configuration that others can write.
    fs::set_permissions(&path, fs::Permissions::from_mode(0o640))?;
    Ok(())
}

fn read_state() -> anyhow::Result<AuditState> {
    let status = auditctl_output(&["-s"])?;
    let settings = status
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
        .collect();
    Ok(AuditState { settings, rules: auditctl_output(&["-l"])? })
}

fn auditctl_output(args: &[&str]) -> anyhow::Result<String> {
    let out =
        Command::new("auditctl").args(args).stderr(Stdio::inherit()).output().context("running auditctl")?;
    if !out.status.success() {
        bail!("auditctl {} failed: {}", args.join(" "), out.status);
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn auditctl(args: &[&str]) -> anyhow::Result<()> {
    auditctl_output(args).map(drop)
}

impl Drop for AuditSession {
    fn drop(&mut self) {
        if self.rule_loaded
            && let Err(error) = auditctl(&["-D", "-k", RULE_KEY])
        {
            eprintln!("bench: removing the audit rule failed: {error:#}; run `auditctl -D -k {RULE_KEY}`");
        }
        drop(self.daemon.take());
        let Ok(now) = read_state() else { return };
        for (key, flag) in RESTORED {
            let (Some(was), Some(is)) = (self.found.settings.get(key), now.settings.get(key)) else {
                continue;
            };
            if was != is
                && let Err(error) = auditctl(&[flag, was])
            {
                eprintln!("bench: restoring audit {key}={was} failed: {error:#}");
            }
        }
        if read_state().is_ok_and(|s| s.rules != self.found.rules) {
            eprintln!("bench: the audit rules differ from those found at start; check `auditctl -l`");
        }
        if self.requiet
            && let Err(error) = auditctl(&quiet_rule("-a"))
        {
            eprintln!("bench: restoring the audit task rule failed: {error:#}");
        }
    }
}

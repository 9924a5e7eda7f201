//! The programs themselves, per read mode (typed, then helper reads): what the verifier
//! made of each (instructions processed, translated size, helper reads left in it), and
//! its run time per invocation under the open, mmap and exec workloads, from the
//! kernel's own `bpf_stats` (`kernel.bpf_stats_enabled`, on only while measuring).

use std::{
    collections::BTreeMap,
    process::{Command, Stdio},
};

use anyhow::{Context as _, bail};
use serde_json::Value;

use super::{Context, configs::HELPER_READS, sensor::Sensor, workloads::Workload};

const STATS_SWITCH: &str = "/proc/sys/kernel/bpf_stats_enabled";

/// The workloads measured, and the scale of each (fewer than the timed rounds: the
/// figure is a per-invocation mean, not a wall time).
const WORKLOADS: [Workload; 3] = [Workload::Open, Workload::Mmap, Workload::Exec];

/// One loaded program.
#[derive(Clone, Debug, Default)]
pub(crate) struct Program {
    pub(crate) name: String,
    /// `typed`, `helper` or `none`, as the sensor reported it.
    pub(crate) reads: String,
    pub(crate) verified_insns: u64,
    pub(crate) xlated_insns: u64,
    /// `bpf_probe_read_kernel` calls left in the translated program.
    pub(crate) probe_reads: u64,
    /// Per workload: (runs, mean ns per run).
    pub(crate) runs: BTreeMap<Workload, (u64, f64)>,
}

/// Both read modes' programs.
#[derive(Clone, Debug, Default)]
pub(crate) struct KernelCosts {
    pub(crate) modes: Vec<(String, Vec<Program>)>,
}

pub(crate) fn run(ctx: &Context) -> anyhow::Result<KernelCosts> {
    let mut costs = KernelCosts::default();
    for (label, env) in [("typed reads", None), ("helper reads", Some(HELPER_READS))] {
        eprintln!("bench: per-program run time with {label} (bpf_stats)");
        costs.modes.push((label.to_owned(), measure(ctx, env)?));
    }
    Ok(costs)
}

fn measure(ctx: &Context, env: Option<(&str, &str)>) -> anyhow::Result<Vec<Program>> {
    let before: Vec<u64> = programs()?.keys().copied().collect();
    let sensor = Sensor::start_with(&ctx.bins, &ctx.dir, &[], env.as_slice())?;
    let status = sensor.status()?;
    let ours: Vec<u64> = programs()?.keys().copied().filter(|id| !before.contains(id)).collect();
    let mut found: BTreeMap<u64, Program> = BTreeMap::new();
    for id in &ours {
        found.insert(*id, describe(*id, &status)?);
    }
    let _stats = StatsOn::enable()?;
    for workload in WORKLOADS {
        let start = programs()?;
        super::workloads::run_scaled(workload, ctx, 0.5)?;
        let end = programs()?;
        for (id, program) in &mut found {
            let (Some(a), Some(b)) = (start.get(id), end.get(id)) else { continue };
            let runs = b.1.saturating_sub(a.1);
            if runs > 0 {
                program.runs.insert(workload, (runs, b.0.saturating_sub(a.0) as f64 / runs as f64));
            }
        }
    }
    drop(sensor);
    Ok(found.into_values().collect())
}

/// (run_time_ns, run_cnt) of every loaded program, by id.
fn programs() -> anyhow::Result<BTreeMap<u64, (u64, u64)>> {
    let out = bpftool(&["-j", "prog", "show"])?;
    let list: Value = serde_json::from_str(&out).context("bpftool's JSON")?;
    Ok(list
        .as_array()
        .map(|programs| {
            programs
                .iter()
                .filter_map(|p| {
                    let n = |key: &str| p[key].as_u64().unwrap_or(0);
                    Some((p["id"].as_u64()?, (n("run_time_ns"), n("run_cnt"))))
                })
                .collect()
        })
        .unwrap_or_default())
}

/// Name, read mode (from the name: `helper_*` are the helper variants), translated size
/// and helper reads of program `id`; the instructions the verifier processed come from the
/// sensor's status (bpftool does not show them), found by attach point.
fn describe(id: u64, status: &Value) -> anyhow::Result<Program> {
    let info: Value = serde_json::from_str(&bpftool(&["-j", "prog", "show", "id", &id.to_string()])?)?;
    let name = info["name"].as_str().unwrap_or("?").to_owned();
    let xlated = bpftool(&["prog", "dump", "xlated", "id", &id.to_string()])?;
    let is_insn =
        |line: &&str| line.trim_start().split_once(": (").is_some_and(|(n, _)| n.parse::<u64>().is_ok());
    let probe_reads = xlated.lines().filter(|l| l.contains("call bpf_probe_read_kernel#")).count() as u64;
    let reads = if name.starts_with("helper_") {
        "helper"
    } else if name == "inet_sock_set_state" || name.starts_with("floor_") {
        "none"
    } else if name == "sched_process_fork" {
        "helper"
    } else {
        "typed"
    };
    Ok(Program {
        reads: reads.to_owned(),
        verified_insns: verified_insns(status, &name),
        name,
        xlated_insns: xlated.lines().filter(is_insn).count() as u64,
        probe_reads,
        runs: BTreeMap::new(),
    })
}

/// The verified instructions the sensor reported for the hook whose attach point ends
/// with `name` (without the `helper_` prefix); `open_exit`, shared by the open syscalls'
/// exits, by the first of them (this bpftool does not show the count).
fn verified_insns(status: &Value, name: &str) -> u64 {
    let base = name.strip_prefix("helper_").unwrap_or(name);
    let point = if base == "open_exit" { "sys_exit_openat" } else { base };
    status["hooks"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|h| h["attached"] == true && h["attach_point"].as_str().is_some_and(|p| p.ends_with(point)))
        .and_then(|h| h["verified_insns"].as_u64())
        .unwrap_or(0)
}

fn bpftool(args: &[&str]) -> anyhow::Result<String> {
    let out =
        Command::new("bpftool").args(args).stderr(Stdio::inherit()).output().context("running bpftool")?;
    if !out.status.success() {
        bail!("bpftool {} failed: {}", args.join(" "), out.status);
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `kernel.bpf_stats_enabled` on, restored when dropped (the accounting costs every
/// program on the machine a clock read or two per run).
struct StatsOn {
    was: String,
}

impl StatsOn {
    fn enable() -> anyhow::Result<Self> {
        let was = std::fs::read_to_string(STATS_SWITCH).context("reading kernel.bpf_stats_enabled")?;
        std::fs::write(STATS_SWITCH, "1").context("enabling kernel.bpf_stats_enabled")?;
        Ok(Self { was: was.trim().to_owned() })
    }
}

impl Drop for StatsOn {
    fn drop(&mut self) {
        if let Err(error) = std::fs::write(STATS_SWITCH, &self.was) {
            eprintln!("bench: restoring kernel.bpf_stats_enabled={} failed: {error}", self.was);
        }
    }
}

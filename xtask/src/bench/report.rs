//! The report: a markdown table per part, then the targets, printed and written to
//! `bench-results/<date>-<time>.md` (no hostname, no paths of this machine).

use std::{collections::BTreeMap, fmt::Write as _, fs};

use super::{
    configs::Config,
    host,
    idle::Idle,
    kernel::KernelCosts,
    latency::Latency,
    stats::{Summary, summarize},
    storm::Storm,
    targets,
    workloads::Workload,
};

/// What the configurations printed about themselves, for the method section.
#[derive(Default)]
pub(crate) struct Notes {
    pub(crate) floor: Option<String>,
    pub(crate) hooks: Option<String>,
}

pub(crate) struct Results {
    machine: String,
    revision: String,
    load_start: f64,
    pub(crate) load_end: f64,
    rounds: usize,
    scale: f64,
    samples: BTreeMap<(Workload, Config), Vec<f64>>,
    pub(crate) storms: Vec<(String, Vec<Storm>)>,
    pub(crate) latency: Vec<Latency>,
    pub(crate) kernel: KernelCosts,
    pub(crate) idle: Option<Idle>,
    pub(crate) tracers: Vec<String>,
    /// The 1-minute load average at the start of every configuration's pass.
    pub(crate) loads: Vec<f64>,
    /// Whether the non-auditd passes ran under `-a never,task`.
    pub(crate) audit_quiet: bool,
    pub(crate) notes: Notes,
}

impl Results {
    pub(crate) fn new(machine: String, load_start: f64, rounds: usize, scale: f64) -> Self {
        Self {
            machine,
            revision: host::sensor_revision(),
            load_start,
            load_end: f64::NAN,
            rounds,
            scale,
            samples: BTreeMap::new(),
            storms: Vec::new(),
            latency: Vec::new(),
            kernel: KernelCosts::default(),
            idle: None,
            tracers: Vec::new(),
            loads: Vec::new(),
            audit_quiet: false,
            notes: Notes::default(),
        }
    }

    pub(crate) fn add(&mut self, workload: Workload, config: Config, value: f64) {
        self.samples.entry((workload, config)).or_default().push(value);
    }

    pub(crate) fn summary(&self, workload: Workload, config: Config) -> Option<Summary> {
        summarize(self.samples.get(&(workload, config))?)
    }

    /// Median of `config` minus median of the baseline.
    pub(crate) fn added(&self, workload: Workload, config: Config) -> Option<f64> {
        Some(self.summary(workload, config)?.median - self.summary(workload, Config::Baseline)?.median)
    }

    fn configs(&self, workload: Workload) -> Vec<Config> {
        self.samples.keys().filter(|(w, _)| *w == workload).map(|(_, c)| *c).collect()
    }
}

pub(crate) fn publish(results: &Results) -> anyhow::Result<()> {
    let (date, time) = host::utc_now()?;
    let text = render(results, &date, &time);
    #[expect(clippy::print_stdout, reason = "the report is the command's output")]
    {
        println!("{text}");
    }
    fs::create_dir_all("bench-results")?;
    let file = format!("bench-results/{date}-{time}.md");
    fs::write(&file, &text)?;
    eprintln!("bench: written to {file}");
    Ok(())
}

fn render(r: &Results, date: &str, time: &str) -> String {
    let mut out = format!("# modelwatch benchmark, {date} {}:{} UTC\n\n", &time[..2], &time[2..4]);
    let _ = writeln!(out, "- Machine: {}.", r.machine);
    let _ = writeln!(out, "- Sensor built from {}.", r.revision);
    let during = summarize(&r.loads).map_or(String::new(), |s| {
        format!(", median {:.2} and max {:.2} across the passes", s.median, s.max)
    });
    let _ = writeln!(
        out,
        "- Load average (1 min): {:.2} at start{during} (the bench's own processes included), \
         {:.2} after the rounds.",
        r.load_start, r.load_end
    );
    let _ = writeln!(
        out,
        "- Method: {} rounds; each brings up every configuration once, in rotating order, and runs \
         every workload under it. Figures are medians across rounds (min–max, interquartile range). \
         Iteration counts ×{}.",
        r.rounds, r.scale
    );
    let _ = writeln!(
        out,
        "- Configurations: **baseline** nothing loaded; **floor** `modelwatch floor` ({}); \
         **modelwatch** `modelwatch run --output none`, defaults ({}); **auditd** Debian's auditd.conf \
         (log in a temporary directory), backlog 8192 as Debian's packaged rules set it, one rule \
         `-a always,exit -F arch=b64 -S openat,openat2,open,mmap,execve,bind,listen`.",
        r.notes.floor.as_deref().unwrap_or("not run"),
        r.notes.hooks.as_deref().unwrap_or("not run")
    );
    if r.audit_quiet {
        out.push_str(
            "- Outside the auditd passes, `auditctl -a never,task` keeps new tasks free of an audit \
             context: once auditd has run, the kernel otherwise gives every new task one, and every \
             syscall pays `audit_reset_context`, until reboot.\n",
        );
    }
    let tracers = if r.tracers.is_empty() { "none".to_owned() } else { r.tracers.join(", ") };
    let _ = writeln!(out, "- Other tracers seen (not started by the bench): {tracers}.\n");
    workload_table(&mut out, r);
    added_table(&mut out, r);
    storm_table(&mut out, r);
    latency_table(&mut out, &r.latency);
    kernel_table(&mut out, &r.kernel);
    idle_table(&mut out, r.idle.as_ref());
    targets::table(&mut out, r);
    out
}

fn workload_table(out: &mut String, r: &Results) {
    if r.samples.is_empty() {
        return;
    }
    out.push_str("## Cost per operation\n\n");
    out.push_str("| workload | configuration | median | min–max | IQR | × baseline | added |\n");
    out.push_str("|---|---|---:|---:|---:|---:|---:|\n");
    for workload in Workload::ALL {
        let base = r.summary(workload, Config::Baseline).map(|s| s.median);
        for config in r.configs(workload) {
            let Some(s) = r.summary(workload, config) else { continue };
            let ratio = base.map_or("".into(), |b| format!("{:.2}", s.median / b));
            let added = match (config, base) {
                (Config::Baseline, _) | (_, None) => "—".to_owned(),
                (_, Some(b)) if workload == Workload::Make => {
                    format!("{:+.1}%", (s.median / b - 1.0) * 100.0)
                }
                (_, Some(b)) => signed_duration(s.median - b),
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {}–{} | {} | {ratio} | {added} |",
                workload.label(),
                config.name(),
                duration(s.median),
                duration(s.min),
                duration(s.max),
                duration(s.q3 - s.q1),
            );
        }
    }
    out.push('\n');
}

fn added_table(out: &mut String, r: &Results) {
    let rows: Vec<Workload> =
        Workload::ALL.into_iter().filter(|w| r.added(*w, Config::Modelwatch).is_some()).collect();
    if rows.is_empty() {
        return;
    }
    out.push_str("## Added cost (configuration − baseline)\n\n");
    out.push_str(
        "| workload | modelwatch | modelwatch, helper reads | floor | auditd | modelwatch / floor | ",
    );
    out.push_str("modelwatch / auditd |\n|---|---:|---:|---:|---:|---:|---:|\n");
    for workload in rows {
        let cell = |c| r.added(workload, c).map_or("—".into(), signed_duration);
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            workload.label(),
            cell(Config::Modelwatch),
            cell(Config::ModelwatchHelper),
            cell(Config::Floor),
            cell(Config::Auditd),
            targets::ratio_text(targets::added_ratio(r, workload, Config::Floor), false),
            targets::ratio_text(targets::added_ratio(r, workload, Config::Auditd), true),
        );
    }
    out.push('\n');
}

fn storm_table(out: &mut String, r: &Results) {
    if r.storms.is_empty() {
        return;
    }
    let procs = r.storms.iter().flat_map(|(_, runs)| runs.first()).map(|s| s.procs).next().unwrap_or(0);
    let _ = writeln!(
        out,
        "## Candidate storm (open + mmap of a small `.gguf`, {procs} processes, gRPC subscriber)\n"
    );
    out.push_str(
        "| ring buffer, folding | storms | generated/s | delivered/s (median) | delivered / generated | ",
    );
    out.push_str(
        "folded | announced lost: kernel / lagged | unaccounted | kernel counted | sensor CPU/event | ",
    );
    out.push_str("latency p50 / p99 |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (label, runs) in &r.storms {
        let rate = |f: fn(&Storm) -> f64| {
            summarize(&runs.iter().map(f).collect::<Vec<_>>()).map_or(0.0, |s| s.median)
        };
        let sum = |f: fn(&Storm) -> u64| runs.iter().map(f).sum::<u64>();
        let unaccounted: i64 = runs.iter().map(Storm::unaccounted).sum();
        let _ = writeln!(
            out,
            "| {label} | {} | {:.0} | {:.0} | {} / {} | {} | {} / {} | {unaccounted} | {} | {:.2} µs | {} / {} |",
            runs.len(),
            rate(Storm::generated_per_sec),
            rate(Storm::delivered_per_sec),
            sum(|s| s.delivered),
            sum(|s| s.generated),
            sum(|s| s.folded),
            sum(|s| s.kernel_lost),
            sum(|s| s.lagged),
            sum(|s| s.kernel_candidates),
            rate(Storm::sensor_us_per_event),
            duration(rate(|s| s.latency_p50_us as f64) * 1e3),
            duration(rate(|s| s.latency_p99_us as f64) * 1e3),
        );
    }
    out.push_str("\nCounts are summed over the storms. *Folding off*: a configuration with ");
    out.push_str(
        "`[kernel] dedup_window_ms = 0`, so that every open and map is a record; *folding on*: the ",
    );
    out.push_str("defaults, where the kernel folds one process's repeats of one file within a second ");
    out.push_str(
        "(*folded*: its `open_folded` + `mmap_folded` counters). *Kernel counted*: the sensor's own ",
    );
    out.push_str(
        "open/mmap `*_forwarded` + `*_lost` counters. *Sensor CPU/event*: the sensor process's CPU ",
    );
    out.push_str("time (all threads) during the storm per delivered event (median); one core sustains its ");
    out.push_str(
        "inverse. *Unaccounted*: generated − delivered − folded − announced lost; below zero when the \
         kernel also dropped or folded other processes' candidates during the storm (its counters \
         cover them all). *Latency*: from the kernel's timestamp in the syscall to the subscriber.\n\n",
    );
}

fn latency_table(out: &mut String, latency: &[Latency]) {
    if latency.is_empty() {
        return;
    }
    out.push_str("## Latency, syscall to gRPC subscriber (open + close of a `.gguf` at a steady rate)\n\n");
    out.push_str(
        "| rate | generated | delivered | p50 | p99 | p99.9 | max |\n|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for l in latency {
        let us = |v: u64| duration(v as f64 * 1e3);
        let _ = writeln!(
            out,
            "| {}/s | {} | {} | {} | {} | {} | {} |",
            l.rate,
            l.generated,
            l.delivered,
            us(l.p50),
            us(l.p99),
            us(l.p999),
            us(l.max)
        );
    }
    out.push_str(
        "\nFolding off (every open is an event); the drain's batching wake-up as shipped (every 10 ms \
         while records flow). Latency: the subscriber's clock at arrival minus the kernel's timestamp \
         on the event.\n\n",
    );
}

fn kernel_table(out: &mut String, kernel: &KernelCosts) {
    if kernel.modes.is_empty() {
        return;
    }
    out.push_str("## The programs: verifier, translated code, run time per invocation (`bpf_stats`)\n\n");
    out.push_str("| read mode | program | verified insns | xlated insns | `bpf_probe_read_kernel` calls | ");
    out.push_str("ns/run, open | ns/run, mmap | ns/run, exec |\n|---|---|---:|---:|---:|---:|---:|---:|\n");
    for (mode, programs) in &kernel.modes {
        for p in programs {
            let run = |w| p.runs.get(&w).map_or("—".to_owned(), |(_, ns)| format!("{ns:.0}"));
            let _ = writeln!(
                out,
                "| {mode} | `{}` ({}) | {} | {} | {} | {} | {} | {} |",
                p.name,
                p.reads,
                p.verified_insns,
                p.xlated_insns,
                p.probe_reads,
                run(Workload::Open),
                run(Workload::Mmap),
                run(Workload::Exec),
            );
        }
    }
    out.push_str(
        "\nEach mode against a fresh sensor (helper reads: `MODELWATCH_KERNEL_READS=helper`). \
         *ns/run*: the kernel's `run_time_ns / run_cnt` for that program while the workload ran \
         (half the usual iterations), `kernel.bpf_stats_enabled` on only then; a program that did \
         not run shows —. *`bpf_probe_read_kernel` calls*: call sites left in the translated \
         program (`bpftool prog dump xlated`); a typed load is a plain load there (`BPF_PROBE_MEM` \
         once JITed).\n\n",
    );
}

fn idle_table(out: &mut String, idle: Option<&Idle>) {
    let Some(idle) = idle else { return };
    out.push_str("## Sensor at rest\n\n| measure | value |\n|---|---:|\n");
    let _ =
        writeln!(out, "| CPU over {} s without activity | {:.3}% of one core |", idle.secs, idle.cpu_percent);
    let _ = writeln!(out, "| RSS at rest | {:.1} MB |", mb(idle.rss_idle_kib));
    let _ = writeln!(
        out,
        "| RSS with {} live processes (`processes_cached` {}) | {:.1} MB |\n",
        idle.processes,
        idle.processes_cached,
        mb(idle.rss_processes_kib)
    );
}

fn signed_duration(ns: f64) -> String {
    if ns >= 0.0 { format!("+{}", duration(ns)) } else { duration(ns) }
}

/// A duration in ns, in the unit that reads best.
pub(crate) fn duration(ns: f64) -> String {
    let abs = ns.abs();
    if abs < 1e3 {
        format!("{ns:.0} ns")
    } else if abs < 1e6 {
        format!("{:.2} µs", ns / 1e3)
    } else if abs < 1e9 {
        format!("{:.1} ms", ns / 1e6)
    } else {
        format!("{:.2} s", ns / 1e9)
    }
}

pub(crate) fn bytes(n: u64) -> String {
    if n >= 1 << 20 && n.is_multiple_of(1 << 20) { format!("{} MiB", n >> 20) } else { format!("{n} bytes") }
}

/// Megabytes (10^6 bytes) from KiB.
pub(crate) fn mb(kib: u64) -> f64 {
    kib as f64 * 1024.0 / 1e6
}

//! The targets, judged against the measured medians. A target is never
//! adjusted here: a miss is reported as a miss.

use std::fmt::Write as _;

use super::{
    configs::Config,
    report::{Results, mb},
    stats::summarize,
    storm::Storm,
    workloads::Workload,
};

/// modelwatch's added cost over `against`'s (floor or auditd); `None` when either is
/// unmeasured or `against` added nothing measurable.
pub(crate) fn added_ratio(r: &Results, workload: Workload, against: Config) -> Option<f64> {
    let ours = r.added(workload, Config::Modelwatch)?;
    let theirs = r.added(workload, against)?;
    (theirs > 0.0).then(|| ours / theirs)
}

pub(crate) fn ratio_text(ratio: Option<f64>, percent: bool) -> String {
    match ratio {
        None => "n/a".into(),
        Some(v) if percent => format!("{:.1}%", v * 100.0),
        Some(v) => format!("{v:.2}"),
    }
}

struct Row {
    target: String,
    measured: String,
    met: Option<bool>,
}

pub(crate) fn table(out: &mut String, r: &Results) {
    let mut rows = Vec::new();
    for workload in Workload::SYSCALLS {
        if let Some(ratio) = added_ratio(r, workload, Config::Floor) {
            let ours = r.added(workload, Config::Modelwatch).unwrap_or(f64::INFINITY);
            // mmap: the floor adds about nothing there, so an absolute bound stands in.
            let (target, met) = if workload == Workload::Mmap {
                ("≤ 1.25 × floor added, or ≤ 150 ns", ratio <= 1.25 || ours <= 150.0)
            } else {
                ("≤ 1.25 × floor added", ratio <= 1.25)
            };
            rows.push(Row {
                target: format!("{}: modelwatch added {target}", workload.label()),
                measured: format!("{ratio:.2} ({})", super::report::duration(ours)),
                met: Some(met),
            });
        }
        // The auditd rules cover no ioctl: there is nothing to compare.
        let audited = workload != Workload::Ioctl;
        if let Some(ratio) = added_ratio(r, workload, Config::Auditd).filter(|_| audited) {
            rows.push(Row {
                target: format!("{}: modelwatch added ≤ 5% of auditd added", workload.label()),
                measured: format!("{:.1}%", ratio * 100.0),
                met: Some(ratio <= 0.05),
            });
        }
    }
    if let (Some(ours), Some(base)) =
        (r.summary(Workload::Make, Config::Modelwatch), r.summary(Workload::Make, Config::Baseline))
    {
        let slowdown = (ours.median / base.median - 1.0) * 100.0;
        rows.push(Row {
            target: "make -j2: modelwatch slowdown < 2%".into(),
            measured: format!("{slowdown:+.1}%"),
            met: Some(slowdown < 2.0),
        });
    }
    if let Some((label, runs)) = r.storms.first() {
        let median = |f: fn(&Storm) -> f64| {
            summarize(&runs.iter().map(f).collect::<Vec<_>>()).map_or(0.0, |s| s.median)
        };
        let rate = median(Storm::delivered_per_sec);
        rows.push(Row {
            target: format!("storm ({label}): ≥ 200,000 events/s delivered"),
            measured: format!("{rate:.0}/s"),
            met: Some(rate >= 200_000.0),
        });
        for (label, runs) in &r.storms {
            let unaccounted: i64 = runs.iter().map(Storm::unaccounted).sum();
            rows.push(Row {
                target: format!("storm ({label}): zero unaccounted loss"),
                measured: unaccounted.to_string(),
                // Below zero: the kernel's loss counters also cover candidates of other
                // processes during the storm, so more was announced than the storm lost.
                met: Some(unaccounted <= 0),
            });
        }
        let cpu = median(Storm::sensor_us_per_event);
        rows.push(Row {
            target: "sensor CPU per storm event ≤ 2.5 µs (1 subscriber)".into(),
            measured: format!("{cpu:.2} µs"),
            met: Some(cpu <= 2.5),
        });
    }
    if let Some(slow) = r.latency.iter().find(|l| l.rate == 1_000) {
        rows.push(Row {
            target: "latency, syscall to subscriber, at 1,000/s: p99 ≤ 15 ms".into(),
            measured: super::report::duration(slow.p99 as f64 * 1e3),
            met: Some(slow.p99 <= 15_000),
        });
    }
    if let Some(idle) = &r.idle {
        rows.push(Row {
            target: "idle CPU ≤ 0.1% of one core".into(),
            measured: format!("{:.3}%", idle.cpu_percent),
            met: Some(idle.cpu_percent <= 0.1),
        });
        rows.push(Row {
            target: "idle RSS ≤ 16 MB".into(),
            measured: format!("{:.1} MB", mb(idle.rss_idle_kib)),
            met: Some(mb(idle.rss_idle_kib) <= 16.0),
        });
        let enough = idle.processes_cached >= 10_000;
        rows.push(Row {
            target: "RSS < 40 MB with 10,000 processes cached".into(),
            measured: format!("{:.1} MB ({} cached)", mb(idle.rss_processes_kib), idle.processes_cached),
            met: enough.then_some(mb(idle.rss_processes_kib) < 40.0),
        });
    }
    if rows.is_empty() {
        return;
    }
    out.push_str("## Targets\n\n| target | measured | met |\n|---|---:|---|\n");
    for row in rows {
        let met = match row.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "n/a",
        };
        let _ = writeln!(out, "| {} | {} | {met} |", row.target, row.measured);
    }
    out.push('\n');
}

//! Accelerator activity: per process, the ioctl rate on its accelerator descriptors over
//! a sliding window (the kernel counts; the sampler sends the counters every second).
//! Crossing the policy's threshold is `accelerator_activity` (sustained, then not);
//! sustained activity by a process that is not an approved runtime is a session rule,
//! `unapproved_accelerator_use`. Where NVIDIA's library is present, real utilisation
//! and memory ride along.

use std::{
    collections::{BTreeSet, HashMap, VecDeque},
    time::{Duration, Instant},
};

use proto::v1::{AcceleratorActivity, event::Payload};

use super::{Pipeline, convert, sessions::Change};
use crate::domain::Runtime;

/// The kernel's ioctl counters at one instant.
#[derive(Clone, Debug)]
pub struct AcceleratorSample {
    pub at: Instant,
    /// `(pid, ioctls so far)`.
    pub counts: Vec<(u32, u64)>,
    /// NVML's view of each process, where the library is present.
    pub usage: Vec<(u32, crate::enrich::nvml::GpuUsage)>,
}

#[derive(Debug, Default)]
pub(super) struct Activity {
    samples: VecDeque<(Instant, u64)>,
    sustained: bool,
    pub(super) kinds: BTreeSet<&'static str>,
}

#[derive(Debug, Default)]
pub(super) struct Accelerators {
    pub(super) by_pid: HashMap<u32, Activity>,
}

impl Pipeline {
    /// An accelerator opened by `pid`: its class, for the activity events.
    pub(super) fn accelerator_opened(&mut self, pid: u32, kind: &'static str) {
        self.accelerators.by_pid.entry(pid).or_default().kinds.insert(kind);
    }

    pub(super) fn on_accelerator_sample(&mut self, sample: &AcceleratorSample) {
        let policy = &self.policy.catalog.policy;
        let window = Duration::from_secs(u64::from(policy.accelerator_window_seconds.max(1)));
        let threshold = policy.accelerator_min_ioctls_per_second;
        let mut changes = Vec::new();
        for (pid, count) in &sample.counts {
            let activity = self.accelerators.by_pid.entry(*pid).or_default();
            activity.samples.push_back((sample.at, *count));
            // Keep one sample at or before the window's start.
            while activity.samples.len() > 2 && activity.samples[1].0 + window <= sample.at {
                activity.samples.pop_front();
            }
            let (Some((t0, c0)), Some((t1, c1))) = (activity.samples.front(), activity.samples.back()) else {
                continue;
            };
            let span = t1.duration_since(*t0);
            // A rate only once the window is (nearly) full: a burst is not sustained.
            if span.as_secs_f64() < window.as_secs_f64() * 0.9 {
                continue;
            }
            let ioctls = c1.saturating_sub(*c0);
            let rate = ioctls as f64 / span.as_secs_f64();
            let sustained = rate >= f64::from(threshold);
            if sustained != activity.sustained {
                activity.sustained = sustained;
                changes.push((
                    *pid,
                    ioctls,
                    rate,
                    sustained,
                    activity.kinds.iter().map(|k| (*k).to_owned()).collect::<Vec<_>>(),
                ));
            }
        }
        for (pid, ioctls, rate, sustained, kinds) in changes {
            let usage = sample.usage.iter().find(|(p, _)| *p == pid).map(|(_, u)| *u);
            self.publish_activity(pid, kinds, window, ioctls, rate, sustained, usage);
        }
    }

    #[expect(clippy::too_many_arguments, reason = "one event's fields")]
    fn publish_activity(
        &mut self,
        pid: u32,
        kinds: Vec<String>,
        window: Duration,
        ioctls: u64,
        rate: f64,
        sustained: bool,
        usage: Option<crate::enrich::nvml::GpuUsage>,
    ) {
        let Some(info) = self.processes.peek(pid) else { return };
        let approved_runtime = info.runtime.as_ref().is_some_and(|c| {
            c.runtime != Runtime::UnknownLoader
                && self.policy.catalog.runtime_allowed(convert::runtime_name(c.runtime))
        });
        let payload = Payload::AcceleratorActivity(AcceleratorActivity {
            kinds,
            window_seconds: u32::try_from(window.as_secs()).unwrap_or(u32::MAX),
            ioctls_per_second: rate,
            ioctls,
            sustained,
            gpu_utilization_percent: usage.map_or(0, |u| u.utilization_percent),
            gpu_memory_bytes: usage.map_or(0, |u| u.memory_bytes),
            source: if usage.is_some() { "nvml" } else { "ioctl" }.to_owned(),
        });
        self.publish(0, Some(convert::process(&info, pid)), payload);
        if sustained && !approved_runtime {
            let what = format!(
                "sustained accelerator activity ({rate:.0} ioctls/s over {}s) by {}, not an approved runtime",
                window.as_secs(),
                if info.exe.is_empty() { &info.comm } else { &info.exe }
            );
            self.session_add(pid, Change::Activity(what), true);
        }
    }
}

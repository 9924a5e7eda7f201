//! Exec and exit: the process cache, runtime classification and marking.

use sensor_common::{ExecEvent, ExitEvent, decode::RawPath, settings::mark};

use super::{Pipeline, convert};
use crate::{
    analyze::runtime::classify,
    domain::{Classification, Role},
    enrich::process::{ProcessInfo, fill_from_header, split_argv},
};
use proto::v1::{ProcessExec, ProcessExit, event::Payload};

impl Pipeline {
    pub(super) fn on_exec(&mut self, event: &ExecEvent, exe: &RawPath) {
        let header = &event.header;
        let argv_len = (event.argv_len as usize).min(event.argv.len());
        let mut info = ProcessInfo {
            ppid: event.ppid,
            exe: String::from_utf8_lossy(&exe.to_path_bytes()).into_owned(),
            argv: split_argv(&event.argv[..argv_len]),
            argv_truncated: event.argv_truncated != 0,
            ..ProcessInfo::default()
        };
        fill_from_header(&mut info, header);
        if let Some(known) = self.processes.peek(header.tgid) {
            info.container_id.clone_from(&known.container_id);
        }
        info.runtime = classify(&info.exe, &info.argv).or_else(|| self.inherited(info.ppid));
        let info = self.processes.insert(info);
        match &info.runtime {
            Some(runtime) if runtime.role.loads_models() => {
                self.set_mark(info.pid, |bits| bits | mark::RUNTIME);
            }
            // The kernel marks by name (`ollama`) or at fork; `ollama run` only talks to
            // a server. Most execs carry no mark: no syscall for them.
            _ if event.marks != 0 => self.set_mark(info.pid, |_| 0),
            _ => {}
        }
        if info.runtime.is_some() || self.options.all_processes {
            self.published.insert(info.pid);
            let payload = exec_payload(info.runtime.as_ref(), info.argv_truncated, false);
            self.publish(header.ktime_ns, Some(convert::process(&info, header.tid)), payload);
        }
    }

    /// A child of a marked runtime belongs to it (the kernel already marked it at fork).
    fn inherited(&self, ppid: u32) -> Option<Classification> {
        let parent = self.processes.peek(ppid)?;
        let runtime = parent.runtime.as_ref()?;
        runtime.role.loads_models().then(|| Classification {
            runtime: runtime.runtime,
            role: Role::Worker,
            rule: format!("child of {} (pid {ppid})", runtime.rule),
        })
    }

    pub(super) fn on_exit(&mut self, event: &ExitEvent) {
        let header = &event.header;
        let info = self.processes.remove(header.tgid);
        // The kernel dropped its mark at exit already.
        self.marked.remove(&header.tgid);
        self.loaders.forget(header.tgid);
        self.listeners.forget(header.tgid);
        if self.accelerators.by_pid.remove(&header.tgid).is_some()
            && let Some(maps) = &self.accelerator_maps
        {
            maps.forget(header.tgid);
        }
        let session_id = self.session_of(header.tgid).map(str::to_owned);
        if !self.published.remove(&header.tgid) {
            self.session_exit(header.tgid);
            return;
        }
        let mut info = info.map(|i| (*i).clone()).unwrap_or_default();
        fill_from_header(&mut info, header);
        // wait(2) encoding: low 7 bits the signal, next 8 bits the exit code.
        let payload = Payload::ProcessExit(ProcessExit {
            exit_code: ((event.exit_code >> 8) & 0xff) as i32,
            signal: (event.exit_code & 0x7f) as i32,
        });
        self.publish_in(header.ktime_ns, Some(convert::process(&info, header.tid)), session_id, payload);
        self.session_exit(header.tgid);
    }
}

pub(super) fn exec_payload(
    runtime: Option<&Classification>,
    argv_truncated: bool,
    snapshot: bool,
) -> Payload {
    Payload::ProcessExec(ProcessExec {
        runtime_rule: runtime.map(|c| c.rule.clone()).unwrap_or_default(),
        runtime_role: runtime.map(|c| c.role.as_str().to_owned()).unwrap_or_default(),
        argv_truncated,
        snapshot,
    })
}

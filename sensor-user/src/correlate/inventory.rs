//! The inventory: what the pipeline knows right now, as the API shows it. Built on
//! request (the gRPC task asks through a channel), so it is consistent with the events.

use std::time::SystemTime;

use proto::v1::{self as pb, Inventory, InventoryModel};
use tokio::sync::oneshot;

use super::{Pipeline, convert};

/// A request for the inventory, answered by the pipeline task.
pub type InventoryRequest = oneshot::Sender<Inventory>;

/// Progress of the at-rest sweep, as the pipeline tracks it.
#[derive(Clone, Debug, Default)]
pub struct Sweep {
    pub roots: Vec<String>,
    pub files_seen: u64,
    pub models_found: u64,
    pub done: bool,
}

fn timestamp(time: SystemTime) -> pbjson_types::Timestamp {
    let since = time.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    pbjson_types::Timestamp {
        seconds: i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(since.subsec_nanos()).unwrap_or(0),
    }
}

impl Pipeline {
    /// What the at-rest sweep found.
    pub(super) fn on_sweep(&mut self, item: crate::analyze::sweep::SweepItem) {
        use crate::analyze::sweep::SweepItem;
        match item {
            SweepItem::Started { roots } => {
                self.sweep.roots = roots.iter().map(|r| r.display().to_string()).collect();
            }
            SweepItem::Seen => self.sweep.files_seen += 1,
            SweepItem::Model { key, path, report, sha256 } => {
                self.sweep.models_found += 1;
                let path = path.to_string_lossy().into_owned();
                self.model_seen(key, &path, report.format, None);
                self.model_facts(&key, *report, sha256);
                self.judge_model(&key);
            }
            SweepItem::Done => self.sweep.done = true,
        }
    }

    pub(super) fn on_inventory(&mut self, reply: InventoryRequest) {
        let _ = reply.send(self.inventory());
    }

    fn inventory(&self) -> Inventory {
        let models = self
            .models
            .by_key
            .iter()
            .map(|(key, state)| {
                let mut file = self
                    .files
                    .known_peek(key)
                    .and_then(|k| k.model.clone())
                    .unwrap_or_else(|| convert::identified_file(state.format, &state.path, key));
                state.path.clone_into(&mut file.path);
                if let Some(report) = &state.report {
                    convert::add_analysis(&mut file, report);
                }
                file.sha256 = state.sha256.clone().unwrap_or_default();
                file.verdict =
                    state.judgement.as_ref().map(|j| convert::verdict(j, &self.policy.catalog.version));
                InventoryModel {
                    file: Some(file),
                    first_seen: Some(timestamp(state.first_seen)),
                    last_seen: Some(timestamp(state.last_seen)),
                    at_rest: state.at_rest,
                    loaded_by: state.loaded_by.iter().copied().collect(),
                }
            })
            .collect();
        let runtimes = self
            .processes
            .iter()
            .filter(|info| info.runtime.is_some())
            .map(|info| pb::InventoryRuntime {
                process: Some(convert::process(info, info.pid)),
                version: self
                    .sessions
                    .by_root
                    .get(&info.pid)
                    .and_then(|s| s.version.clone())
                    .unwrap_or_default(),
                session_id: self.session_of(info.pid).unwrap_or_default().to_owned(),
            })
            .collect();
        let listeners = self
            .listeners
            .all()
            .filter_map(|(pid, listener)| {
                let info = self.processes.peek(pid)?;
                Some(pb::InventoryListener {
                    process: Some(convert::process(&info, pid)),
                    listener: Some(listener.clone()),
                    session_id: self.session_of(pid).unwrap_or_default().to_owned(),
                })
            })
            .collect();
        let sessions = self
            .sessions
            .by_root
            .values()
            .chain(self.sessions.ended.iter())
            .map(|s| self.session_message(s))
            .collect();
        Inventory {
            node: String::new(),
            taken: Some(timestamp(SystemTime::now())),
            models,
            runtimes,
            listeners,
            sessions,
            catalog_path: self
                .policy
                .catalog
                .path
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            catalog_version: self.policy.catalog.version.clone(),
            sweep: Some(pb::SweepProgress {
                roots: self.sweep.roots.clone(),
                files_seen: self.sweep.files_seen,
                models_found: self.sweep.models_found,
                done: self.sweep.done,
            }),
        }
    }
}

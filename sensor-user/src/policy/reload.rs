//! Catalog reloads: on SIGHUP and when the file changes (its identity or times, polled:
//! editors replace files by rename, which a watch on the old inode would miss). A bad
//! file is refused with one log line and a finding; the catalog in force stays.

use std::{path::PathBuf, sync::Arc, time::Duration};

use tokio::{
    signal::unix::{SignalKind, signal},
    sync::mpsc,
};

use super::{Policy, PolicyUpdate};

/// How often the catalog file's identity is checked.
const POLL: Duration = Duration::from_secs(2);

/// What tells a changed file: device, inode, size, mtime, ctime (`None`: unreadable).
fn stamp(path: &std::path::Path) -> Option<(u64, u64, u64, i64, i64)> {
    use std::os::unix::fs::MetadataExt as _;
    let meta = std::fs::metadata(path).ok()?;
    Some((
        meta.dev(),
        meta.ino(),
        meta.size(),
        meta.mtime_nsec() + meta.mtime() * 1_000_000_000,
        meta.ctime_nsec() + meta.ctime() * 1_000_000_000,
    ))
}

/// Reloads `path` into `updates` until the pipeline goes away.
pub async fn watch(path: PathBuf, updates: mpsc::Sender<PolicyUpdate>) {
    let mut hangup = signal(SignalKind::hangup()).ok();
    let mut ticker = tokio::time::interval(POLL);
    let mut seen = stamp(&path);
    loop {
        let asked = tokio::select! {
            _ = ticker.tick() => false,
            Some(()) = async { match hangup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => true,
        };
        let now = stamp(&path);
        if !asked && now == seen {
            continue;
        }
        seen = now;
        let loaded = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || Policy::load(&path)).await
        };
        let update = match loaded {
            Ok(Ok(policy)) => {
                tracing::info!(catalog = %path.display(), version = %policy.catalog.version, "catalog loaded");
                PolicyUpdate::Loaded(Arc::new(policy))
            }
            Ok(Err(error)) => {
                tracing::error!(%error, "catalog refused; the previous one stays in force");
                PolicyUpdate::Rejected { path: path.clone(), reason: error.to_string() }
            }
            Err(error) => PolicyUpdate::Rejected { path: path.clone(), reason: error.to_string() },
        };
        if updates.send(update).await.is_err() {
            return;
        }
    }
}

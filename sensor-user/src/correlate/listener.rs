//! Listeners: port, address and how exposed they are. A listener forwarded only
//! because its process was provisionally marked (it just loaded a candidate) waits for
//! that candidate's identification; a process newly marked as a runtime also has the
//! listeners it already held reported, so "listen, then load" is seen too.

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use proto::v1::{Exposure, ListenerOpened, event::Payload};
use sensor_common::{ListenEvent, reason, settings::mark};

use super::{Pipeline, convert};
use crate::{
    analyze::pool::Finished,
    domain::Drop,
    enrich::snapshot::{HeldListener, HeldListeners},
};

const AF_INET: u16 = 2;

/// Listeners published, per live process: so that the kernel's record and a later read
/// of the held listeners never report one twice, and for the inventory.
#[derive(Debug, Default)]
pub(super) struct Published {
    by_pid: HashMap<u32, Vec<ListenerOpened>>,
}

/// Listeners remembered per process; past this, duplicates are possible, never loss.
const MAX_PUBLISHED_PER_PROCESS: usize = 1024;

impl Published {
    /// Records a listener; false if it was published already.
    fn insert(&mut self, pid: u32, listener: &ListenerOpened) -> bool {
        let list = self.by_pid.entry(pid).or_default();
        if list.len() >= MAX_PUBLISHED_PER_PROCESS {
            return true;
        }
        if list.iter().any(|l| l.port == listener.port && l.address == listener.address) {
            return false;
        }
        list.push(listener.clone());
        true
    }

    pub(super) fn forget(&mut self, pid: u32) {
        self.by_pid.remove(&pid);
    }

    /// Every listener of every live process.
    pub(super) fn all(&self) -> impl Iterator<Item = (u32, &ListenerOpened)> {
        self.by_pid.iter().flat_map(|(pid, list)| list.iter().map(move |l| (*pid, l)))
    }
}

impl Pipeline {
    pub(super) fn on_listen(&mut self, event: &ListenEvent) {
        let pid = event.header.tgid;
        let only_provisional = event.reason == reason::MARKED_RUNTIME
            && event.marks & !mark::PROVISIONAL == 0
            && !self.loaders.is_confirmed(pid);
        if only_provisional {
            match self.loaders.hold(pid, event) {
                Some(true) => return,
                Some(false) => {}
                // Nothing pending and never confirmed: its candidates were not models.
                None => {
                    self.drops.bump(Drop::ListenerNotRuntime);
                    return;
                }
            }
        }
        self.publish_listener(event);
    }

    fn publish_listener(&mut self, event: &ListenEvent) {
        let header = &event.header;
        let address = address(event);
        let listener = ListenerOpened {
            port: u32::from(event.port),
            address: address.to_string(),
            exposure: exposure(address).into(),
            family: family(address).to_owned(),
            protocol: "tcp".to_owned(),
            reasons: convert::reasons(event.reason),
            snapshot: false,
        };
        // A kernel record is always a new listen; it is remembered so that a later read
        // of the held listeners does not report it again.
        self.listeners.insert(header.tgid, &listener);
        self.listener_in_session(header.tgid, event.port, address);
        let info = self.processes.lookup(header);
        self.publish(
            header.ktime_ns,
            Some(convert::process(&info, header.tid)),
            Payload::ListenerOpened(listener),
        );
    }

    /// A runtime server that listens, or a process that loaded a model and listens, is
    /// an inference session (or already in one).
    fn listener_in_session(&mut self, pid: u32, port: u16, address: IpAddr) {
        let server = self.processes.peek(pid).and_then(|p| p.runtime.clone()).is_some_and(|c| {
            c.role == crate::domain::Role::Server || c.runtime == crate::domain::Runtime::UnknownLoader
        });
        let create = server || self.loaders.is_confirmed(pid);
        self.session_add(pid, super::sessions::Change::Listener(port, address), create);
    }

    /// One of `pid`'s candidate loads is known; once none is pending, its held
    /// listeners are published (a model was loaded) or dropped and its provisional
    /// mark cleared (none was).
    pub(super) fn resolve_loader(&mut self, pid: u32, model: bool) {
        if model {
            self.loaders.confirm(pid);
        }
        let Some(resolution) = self.loaders.resolve(pid, model) else { return };
        if resolution.confirmed {
            for held in &resolution.held {
                self.publish_listener(held);
            }
        } else {
            self.drops.add(Drop::ListenerNotRuntime, resolution.held.len() as u64);
            self.set_mark(pid, |bits| bits & !mark::PROVISIONAL);
        }
    }

    /// Asks a worker for the listeners `pid` already holds.
    pub(super) fn request_held_listeners(&mut self, pid: u32) {
        let ticket = self.workers.ticket();
        if self.workers.held.try_submit(ticket, pid).is_err() {
            self.drops.bump(Drop::HeldListenersUnreadable);
        }
    }

    pub(super) fn on_held_listeners(&mut self, done: Finished<HeldListeners>) {
        let Some(HeldListeners { pid, listeners }) = done.result else { return };
        let listeners = match listeners {
            Ok(listeners) => listeners,
            Err(error) => {
                // The process is gone: nothing it held is listening any more.
                tracing::debug!(pid, error, "held listeners not read");
                return;
            }
        };
        let snapshot = self.snapshot_pids.remove(&pid);
        let why = if snapshot { "snapshot" } else { "held_when_marked" };
        self.publish_held(pid, &listeners, why, snapshot);
    }

    /// Publishes listeners found in procfs (held when marked, or at start-up).
    pub(super) fn publish_held(&mut self, pid: u32, listeners: &[HeldListener], why: &str, snapshot: bool) {
        let Some(info) = self.processes.peek(pid) else { return };
        for held in listeners {
            let listener = ListenerOpened {
                port: u32::from(held.port),
                address: held.address.to_string(),
                exposure: exposure(held.address).into(),
                family: family(held.address).to_owned(),
                protocol: "tcp".to_owned(),
                reasons: vec![why.to_owned()],
                snapshot,
            };
            if !self.listeners.insert(pid, &listener) {
                continue;
            }
            self.listener_in_session(pid, held.port, held.address);
            self.publish(0, Some(convert::process(&info, pid)), Payload::ListenerOpened(listener));
        }
    }
}

fn address(event: &ListenEvent) -> IpAddr {
    if event.family == AF_INET {
        IpAddr::V4(Ipv4Addr::new(event.addr[0], event.addr[1], event.addr[2], event.addr[3]))
    } else {
        IpAddr::V6(Ipv6Addr::from(event.addr))
    }
}

fn family(address: IpAddr) -> &'static str {
    if address.is_ipv4() { "ipv4" } else { "ipv6" }
}

/// Who can reach a listener bound to `address`.
#[must_use]
pub(super) fn exposure(address: IpAddr) -> Exposure {
    let address = match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    if address.is_unspecified() {
        Exposure::AllInterfaces
    } else if address.is_loopback() {
        Exposure::Loopback
    } else {
        Exposure::SpecificAddress
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposure_of_common_binds() {
        let cases = [
            ("127.0.0.1", Exposure::Loopback),
            ("127.0.1.1", Exposure::Loopback),
            ("0.0.0.0", Exposure::AllInterfaces),
            ("::", Exposure::AllInterfaces),
            ("::1", Exposure::Loopback),
            ("::ffff:127.0.0.1", Exposure::Loopback),
            ("::ffff:0.0.0.0", Exposure::AllInterfaces),
            ("192.168.1.10", Exposure::SpecificAddress),
            ("fe80::1", Exposure::SpecificAddress),
        ];
        for (text, expected) in cases {
            let address: IpAddr = text.parse().expect("address");
            assert_eq!(exposure(address), expected, "{text}");
        }
    }
}

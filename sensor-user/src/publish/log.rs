//! The event log: every event gets the next node-wide sequence number, is retained in a
//! bounded window for replay, and is broadcast live. Subscribers never slow the
//! pipeline: one that falls behind skips ahead and is told exactly what it missed.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex, PoisonError},
    time::SystemTime,
};

use proto::v1::{EventsLost, LossSource, Process, event::Payload};
use tokio::sync::broadcast::{self, error::RecvError};

pub type Event = proto::v1::Event;

struct Retained {
    next_seq: u64,
    events: VecDeque<Arc<Event>>,
    capacity: usize,
}

/// The node's event sequence.
pub struct EventLog {
    node: String,
    /// Random per start: tells a consumer where a restart happened.
    instance: String,
    retained: Mutex<Retained>,
    live: broadcast::Sender<Arc<Event>>,
}

impl EventLog {
    /// `retain`: events kept for replay; `live_buffer`: how far a subscriber may fall
    /// behind before it skips.
    #[must_use]
    pub fn new(node: String, retain: usize, live_buffer: usize) -> Self {
        let (live, _) = broadcast::channel(live_buffer.max(16));
        Self {
            node,
            instance: new_instance_id(),
            retained: Mutex::new(Retained { next_seq: 1, events: VecDeque::new(), capacity: retain.max(1) }),
            live,
        }
    }

    #[must_use]
    pub fn node(&self) -> &str {
        &self.node
    }

    #[must_use]
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Numbers, retains and broadcasts one event (of no session).
    pub fn publish(&self, time: SystemTime, process: Option<Process>, payload: Payload) -> Arc<Event> {
        self.publish_in(time, process, String::new(), payload)
    }

    /// Numbers, retains and broadcasts one event of an inference session.
    pub fn publish_in(
        &self,
        time: SystemTime,
        process: Option<Process>,
        session_id: String,
        payload: Payload,
    ) -> Arc<Event> {
        let mut retained = self.retained.lock().unwrap_or_else(PoisonError::into_inner);
        let event = Arc::new(Event {
            seq: retained.next_seq,
            time: Some(timestamp(time)),
            node: self.node.clone(),
            process,
            payload: Some(payload),
            instance: self.instance.clone(),
            session_id,
        });
        retained.next_seq += 1;
        if retained.events.len() == retained.capacity {
            retained.events.pop_front();
        }
        retained.events.push_back(Arc::clone(&event));
        // Sent under the lock, so live order is sequence order. No receiver is fine.
        let _ = self.live.send(Arc::clone(&event));
        event
    }

    /// Events published so far.
    #[must_use]
    pub fn published(&self) -> u64 {
        self.retained.lock().unwrap_or_else(PoisonError::into_inner).next_seq - 1
    }

    #[must_use]
    pub fn subscribers(&self) -> usize {
        self.live.receiver_count()
    }

    /// A subscription that replays retained events from `since_seq` (0: live only) and
    /// then follows the live stream.
    #[must_use]
    pub fn subscribe(&self, since_seq: u64) -> Subscription {
        let retained = self.retained.lock().unwrap_or_else(PoisonError::into_inner);
        let live = self.live.subscribe();
        let mut replay = VecDeque::new();
        let mut notice = None;
        let mut last_seq = retained.next_seq - 1;
        if since_seq > 0 && since_seq <= last_seq {
            let oldest = retained.events.front().map_or(retained.next_seq, |e| e.seq);
            if since_seq < oldest {
                notice = Some(lost(LossSource::Retention, since_seq, oldest - 1));
            }
            replay.extend(retained.events.iter().filter(|e| e.seq >= since_seq).cloned());
            last_seq = since_seq - 1;
        }
        Subscription { replay, live, notice, last_seq }
    }
}

impl crate::correlate::EventSink for EventLog {
    fn publish(
        &self,
        time: SystemTime,
        process: Option<Process>,
        session_id: String,
        payload: Payload,
    ) -> u64 {
        self.publish_in(time, process, session_id, payload).seq
    }
}

/// 128 random bits, hex: unique per start.
fn new_instance_id() -> String {
    let mut bytes = [0u8; 16];
    if rustix::rand::getrandom(&mut bytes, rustix::rand::GetRandomFlags::empty()).is_err() {
        // Never seen; the time still tells restarts apart.
        let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
        bytes[..16].copy_from_slice(&now.as_nanos().to_le_bytes());
    }
    hex::encode(bytes)
}

fn timestamp(time: SystemTime) -> pbjson_types::Timestamp {
    let since = time.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    pbjson_types::Timestamp {
        seconds: i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(since.subsec_nanos()).unwrap_or(0),
    }
}

/// A subscriber-local notice (sequence 0: not part of the node's sequence).
fn lost(source: LossSource, first_seq: u64, last_seq: u64) -> Arc<Event> {
    let count = last_seq + 1 - first_seq;
    Arc::new(Event {
        seq: 0,
        time: Some(timestamp(SystemTime::now())),
        node: String::new(),
        instance: String::new(),
        session_id: String::new(),
        process: None,
        payload: Some(Payload::EventsLost(EventsLost {
            source: source.into(),
            count,
            total: count,
            first_seq,
            last_seq,
            ..EventsLost::default()
        })),
    })
}

/// One subscriber's view of the log.
pub struct Subscription {
    replay: VecDeque<Arc<Event>>,
    live: broadcast::Receiver<Arc<Event>>,
    notice: Option<Arc<Event>>,
    last_seq: u64,
}

impl Subscription {
    /// The next event; `None` once the log is gone.
    pub async fn next(&mut self) -> Option<Arc<Event>> {
        if let Some(notice) = self.notice.take() {
            return Some(notice);
        }
        if let Some(event) = self.replay.pop_front() {
            self.last_seq = event.seq;
            return Some(event);
        }
        loop {
            match self.live.recv().await {
                // Already replayed.
                Ok(event) if event.seq <= self.last_seq => {}
                Ok(event) => {
                    let skipped = (event.seq > self.last_seq + 1 && self.last_seq > 0)
                        .then(|| lost(LossSource::SubscriberLagged, self.last_seq + 1, event.seq - 1));
                    self.last_seq = event.seq;
                    if let Some(notice) = skipped {
                        self.notice = Some(event);
                        return Some(notice);
                    }
                    return Some(event);
                }
                // The next recv returns the oldest event still buffered; the gap is
                // computed from its sequence number above.
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests;

//! Readers of the log. A cursor is a sequence number: it reads from the memory window
//! while it is close to the head, from the files when it is not, and gets a [`Gap`]
//! for what neither has. It never waits for anything but new events, so a reader that
//! stops reading costs only its own position.

use std::{
    collections::VecDeque,
    sync::{
        Arc, PoisonError,
        atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering},
    },
};

use proto::v1::{EventsLost, LossSource, event::Payload};

use super::{Event, Gap, GapReason, Item, Shared, store::Position};

/// Who reads: for status and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutletKind {
    Grpc,
    Ocsf,
    Otlp,
    Stdout,
    File,
}

impl OutletKind {
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Grpc => "grpc",
            Self::Ocsf => "ocsf",
            Self::Otlp => "otlp",
            Self::Stdout => "stdout",
            Self::File => "file",
        }
    }
}

/// Where one reader stands (shared with status and metrics).
#[derive(Debug)]
pub struct OutletState {
    pub kind: OutletKind,
    next_seq: AtomicU64,
    delivered: AtomicU64,
    queued: AtomicU32,
    catching_up: AtomicBool,
    retrying: AtomicBool,
}

impl OutletState {
    #[must_use]
    pub fn next_seq(&self) -> u64 {
        self.next_seq.load(Ordering::Relaxed)
    }

    #[must_use]
    pub fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }

    pub fn add_delivered(&self, count: u64) {
        self.delivered.fetch_add(count, Ordering::Relaxed);
    }

    #[must_use]
    pub fn queued(&self) -> u32 {
        self.queued.load(Ordering::Relaxed)
    }

    pub fn set_queued(&self, queued: usize) {
        self.queued.store(u32::try_from(queued).unwrap_or(u32::MAX), Ordering::Relaxed);
    }

    pub fn set_retrying(&self, retrying: bool) {
        self.retrying.store(retrying, Ordering::Relaxed);
    }

    /// "live", "catching_up" or "retrying".
    #[must_use]
    pub fn state(&self) -> &'static str {
        if self.retrying.load(Ordering::Relaxed) {
            "retrying"
        } else if self.catching_up.load(Ordering::Relaxed) {
            "catching_up"
        } else {
            "live"
        }
    }
}

/// A reader of the log from a sequence number on.
pub struct Cursor {
    shared: Arc<Shared>,
    next: u64,
    visible: tokio::sync::watch::Receiver<u64>,
    position: Option<Box<Position>>,
    state: Arc<OutletState>,
}

impl Cursor {
    pub(super) fn new(shared: Arc<Shared>, next: u64, kind: OutletKind) -> Self {
        let state = Arc::new(OutletState {
            kind,
            next_seq: AtomicU64::new(next),
            delivered: AtomicU64::new(0),
            queued: AtomicU32::new(0),
            catching_up: AtomicBool::new(false),
            retrying: AtomicBool::new(false),
        });
        shared.outlets.lock().unwrap_or_else(PoisonError::into_inner).push(Arc::downgrade(&state));
        let visible = shared.visible.subscribe();
        Self { shared, next, visible, position: None, state }
    }

    /// The next sequence number this cursor reads.
    #[must_use]
    pub fn next_seq(&self) -> u64 {
        self.next
    }

    #[must_use]
    pub fn state(&self) -> &Arc<OutletState> {
        &self.state
    }

    /// Appends up to `max` items to `out`, waiting for new events when there are none.
    /// `false` once the log is closed and everything visible was read.
    pub async fn next_batch(&mut self, max: usize, out: &mut Vec<Item>) -> bool {
        loop {
            let visible = *self.visible.borrow_and_update();
            if self.next <= visible {
                if !self.read_memory(max, out) {
                    self.read_files(max, out).await;
                }
                self.state.next_seq.store(self.next, Ordering::Relaxed);
                return true;
            }
            if self.shared.closed.load(Ordering::SeqCst) || self.visible.changed().await.is_err() {
                return false;
            }
        }
    }

    /// Reads from the memory window if it still holds the next event.
    fn read_memory(&mut self, max: usize, out: &mut Vec<Item>) -> bool {
        let ring = self.shared.ring.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(front) = ring.front().map(|r| r.seq) else { return false };
        if self.next < front {
            return false;
        }
        let start = usize::try_from(self.next - front).unwrap_or(usize::MAX);
        let before = out.len();
        out.extend(ring.iter().skip(start).take(max).cloned().map(Item::Event));
        self.next += (out.len() - before) as u64;
        self.state.catching_up.store(false, Ordering::Relaxed);
        // Left behind by a catch-up that is over.
        self.position = None;
        true
    }

    /// Reads from the files (off the async threads: page-cache reads, rarely the disk).
    async fn read_files(&mut self, max: usize, out: &mut Vec<Item>) {
        self.state.catching_up.store(true, Ordering::Relaxed);
        let shared = Arc::clone(&self.shared);
        let mut position = self.position.take().unwrap_or_default();
        let from = self.next;
        let read = tokio::task::spawn_blocking(move || {
            let mut items = Vec::new();
            let next = shared.store.read(&mut position, from, max, &mut items);
            (items, position, next)
        })
        .await;
        let Ok((items, position, next)) = read else { return };
        self.position = Some(position);
        out.extend(items);
        self.next = next;
        if next == from {
            // In neither the files nor memory: a failed write. Skip to memory.
            let front =
                self.shared.ring.lock().unwrap_or_else(PoisonError::into_inner).front().map(|r| r.seq);
            if let Some(front) = front.filter(|f| *f > from) {
                out.push(Item::Gap(Gap { first_seq: from, last_seq: front - 1, reason: GapReason::Damaged }));
                self.next = front;
            }
        }
    }
}

impl Drop for Cursor {
    fn drop(&mut self) {
        let mut outlets = self.shared.outlets.lock().unwrap_or_else(PoisonError::into_inner);
        outlets.retain(|o| o.strong_count() > 0 && !std::ptr::eq(o.as_ptr(), Arc::as_ptr(&self.state)));
    }
}

/// Items one at a time.
pub struct Subscription {
    cursor: Cursor,
    buffer: Vec<Item>,
    ready: VecDeque<Item>,
}

impl Subscription {
    pub(super) fn new(cursor: Cursor) -> Self {
        Self { cursor, buffer: Vec::new(), ready: VecDeque::new() }
    }

    /// The next item; `None` once the log is closed.
    pub async fn next(&mut self) -> Option<Item> {
        loop {
            if let Some(item) = self.ready.pop_front() {
                return Some(item);
            }
            if !self.cursor.next_batch(256, &mut self.buffer).await {
                return None;
            }
            self.ready.extend(self.buffer.drain(..));
        }
    }

    /// The next item as an event: gaps become `events_lost` notices (sequence 0).
    pub async fn next_event(&mut self) -> Option<Event> {
        loop {
            match self.next().await? {
                Item::Event(record) => match record.decode() {
                    Ok(event) => return Some(event),
                    Err(error) => tracing::warn!(seq = record.seq, %error, "an undecodable logged event"),
                },
                Item::Gap(gap) => return Some(notice(&gap)),
            }
        }
    }

    #[must_use]
    pub fn cursor(&self) -> &Cursor {
        &self.cursor
    }
}

/// The subscriber-local `events_lost` for a gap (sequence 0: not part of the node's
/// sequence). Retention: older than the log keeps; damage: `by_counter.log_damaged`.
#[must_use]
pub fn notice(gap: &Gap) -> Event {
    let count = gap.count();
    let (source, by_counter) = match gap.reason {
        GapReason::Retention => (LossSource::Retention, Default::default()),
        GapReason::Damaged => {
            (LossSource::Pipeline, [("log_damaged".to_owned(), count)].into_iter().collect())
        }
    };
    Event {
        seq: 0,
        time: Some(super::timestamp(std::time::SystemTime::now())),
        node: String::new(),
        instance: String::new(),
        session_id: String::new(),
        process: None,
        payload: Some(Payload::EventsLost(EventsLost {
            source: source.into(),
            count,
            by_counter,
            total: count,
            first_seq: gap.first_seq,
            last_seq: gap.last_seq,
        })),
    }
}

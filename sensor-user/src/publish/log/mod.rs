//! The event log: every event gets the next node-wide sequence number, is encoded once
//! (protobuf), written to a durable, segmented, checksummed log on disk, and kept in a
//! bounded window in memory. Every reader (gRPC subscribers, the OTLP shipper, JSON
//! writers) is a [`Cursor`] over the same sequence: it reads from memory while it keeps
//! up and from the files when it falls behind, so no reader ever slows the pipeline or
//! another reader, and what a reader cannot get is announced, never skipped silently.
//!
//! Why a format of our own rather than a storage crate: the access pattern is an append
//! of ~300-byte records at up to 200,000/s and sequential reads from a sequence number,
//! with old data dropped whole. An LSM store (fjall) writes every record twice (journal,
//! then table) and compacts; a B-tree (redb) rewrites pages and needs an fsync per
//! commit to be crash-safe. Segments of length-prefixed, checksummed frames (Kafka's
//! layout) write each byte once, survive `kill -9` with plain `write(2)` (the page cache
//! outlives the process), and drop old data by deleting a file.
//!
//! Publishing is group-committed: the pipeline appends to a queue, one writer thread
//! writes what accumulated with one `write(2)` and only then makes it visible to readers.
//! So an event any reader has seen is in the file, and after a crash the sequence
//! continues after the last logged event.

pub mod cursor;
mod frame;
mod segment;
mod store;
mod writer;

use std::{
    collections::VecDeque,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, SystemTime},
};

use bytes::{Bytes, BytesMut};
use prost::Message as _;
use proto::v1::{Process, event::Payload};

pub use self::{
    cursor::{Cursor, OutletKind, OutletState, Subscription, notice},
    frame::Meta,
    store::{Extent, StoreError, StoreLimits},
};
use self::{store::Store, writer::Queue};

pub type Event = proto::v1::Event;

/// One logged event: its sequence number, what filters need, and its protobuf bytes
/// (shared, never copied per reader).
#[derive(Clone, Debug)]
pub struct Record {
    pub seq: u64,
    pub meta: Meta,
    pub bytes: Bytes,
}

impl Record {
    /// The event.
    ///
    /// # Errors
    /// The bytes are not an `Event` (never for what this sensor wrote).
    pub fn decode(&self) -> Result<Event, prost::DecodeError> {
        Event::decode(self.bytes.clone())
    }
}

/// Why a reader did not get a range of sequence numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GapReason {
    /// Older than what the log keeps.
    Retention,
    /// The log's bytes there are damaged (or were never written: a disk error).
    Damaged,
}

/// A range of sequence numbers a reader will not get.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gap {
    pub first_seq: u64,
    pub last_seq: u64,
    pub reason: GapReason,
}

impl Gap {
    #[must_use]
    pub fn count(&self) -> u64 {
        self.last_seq + 1 - self.first_seq
    }
}

/// What a reader gets, in sequence order.
#[derive(Clone, Debug)]
pub enum Item {
    Event(Record),
    Gap(Gap),
}

/// How the log is kept.
#[derive(Clone, Debug)]
pub struct LogSettings {
    pub store: StoreLimits,
    /// The newest events kept in memory: readers this close to the head never touch
    /// the files.
    pub memory_events: usize,
    /// How often the newest segment is flushed to the device (`fdatasync`), so that a
    /// power cut loses at most this much. A crashed process loses nothing written.
    pub sync_interval: Duration,
}

/// The instance that logged before this one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Previous {
    pub instance: String,
    pub last_seq: u64,
    pub last_time: Option<pbjson_types::Timestamp>,
}

pub(crate) struct Shared {
    queue: Queue,
    ring: Mutex<VecDeque<Record>>,
    memory_events: usize,
    /// The last sequence number readers may see (it is in the file, or the write failed
    /// and was counted).
    visible: tokio::sync::watch::Sender<u64>,
    store: Store,
    closed: AtomicBool,
    write_errors: AtomicU64,
    outlets: Mutex<Vec<std::sync::Weak<OutletState>>>,
}

/// What was published, for metrics.
struct Tally {
    /// By `EventKind` number.
    by_kind: [AtomicU64; 256],
    /// `events_lost` counts by (source, counter).
    lost: Mutex<std::collections::BTreeMap<(String, String), u64>>,
}

/// The node's event sequence.
pub struct EventLog {
    node: String,
    /// Random per start: tells a consumer where a restart happened.
    instance: String,
    /// `node` and `instance` as protobuf fields, appended to every event's bytes (field
    /// order does not matter in protobuf): encoded once, never cloned per event.
    tail: Vec<u8>,
    shared: Arc<Shared>,
    first_seq: u64,
    previous: Option<Previous>,
    recovery_note: Option<String>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    tally: Tally,
}

impl EventLog {
    /// Opens the log in its directory (recovering what a previous run left) and starts
    /// its writer thread. Sequence numbers continue after the last logged event.
    ///
    /// # Errors
    /// The directory cannot be created or read.
    pub fn open(node: String, settings: &LogSettings) -> Result<Self, StoreError> {
        let (store, appender, recovery) = Store::open(settings.store.clone())?;
        let last_seq = recovery.last_seq.unwrap_or(0);
        let previous = recovery
            .last_payload
            .as_deref()
            .and_then(|bytes| Event::decode(bytes).ok())
            .map(|e| Previous { instance: e.instance, last_seq, last_time: e.time });
        let recovery_note = (recovery.cut_bytes > 0 || recovery.damaged_frames > 0).then(|| {
            format!(
                "event log recovered: {} torn bytes cut at the tail, {} damaged frames skipped",
                recovery.cut_bytes, recovery.damaged_frames
            )
        });
        let instance = new_instance_id();
        let mut tail = Vec::new();
        prost::encoding::string::encode(3, &node, &mut tail);
        prost::encoding::string::encode(5, &instance, &mut tail);
        let (visible, _) = tokio::sync::watch::channel(last_seq);
        let shared = Arc::new(Shared {
            queue: Queue::new(last_seq + 1),
            ring: Mutex::new(VecDeque::with_capacity(settings.memory_events.min(1 << 16))),
            memory_events: settings.memory_events.max(16),
            visible,
            store,
            closed: AtomicBool::new(false),
            write_errors: AtomicU64::new(0),
            outlets: Mutex::new(Vec::new()),
        });
        let writer = writer::spawn(Arc::clone(&shared), appender, settings.sync_interval);
        Ok(Self {
            node,
            instance,
            tail,
            shared,
            first_seq: last_seq + 1,
            previous,
            recovery_note,
            writer: Mutex::new(Some(writer)),
            tally: Tally { by_kind: std::array::from_fn(|_| AtomicU64::new(0)), lost: Mutex::default() },
        })
    }

    /// A log in a fresh temporary directory (tests, tools).
    ///
    /// # Errors
    /// As [`EventLog::open`].
    pub fn temporary(node: &str, dir: &Path) -> Result<Self, StoreError> {
        Self::open(node.to_owned(), &LogSettings::in_dir(dir.to_path_buf()))
    }

    #[must_use]
    pub fn node(&self) -> &str {
        &self.node
    }

    #[must_use]
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// The first sequence number of this instance.
    #[must_use]
    pub fn first_seq(&self) -> u64 {
        self.first_seq
    }

    /// The instance before this one, if the log had events.
    #[must_use]
    pub fn previous(&self) -> Option<&Previous> {
        self.previous.as_ref()
    }

    /// What recovery had to repair, if anything.
    #[must_use]
    pub fn recovery_note(&self) -> Option<&str> {
        self.recovery_note.as_deref()
    }

    #[must_use]
    pub fn directory(&self) -> &Path {
        self.shared.store.dir()
    }

    /// Numbers, encodes (once) and queues one event (of no session) for the writer;
    /// returns its sequence number.
    pub fn publish(&self, time: SystemTime, process: Option<Process>, payload: Payload) -> u64 {
        self.publish_in(time, process, String::new(), payload)
    }

    /// [`EventLog::publish`] for an event of an inference session.
    pub fn publish_in(
        &self,
        time: SystemTime,
        process: Option<Process>,
        session_id: String,
        payload: Payload,
    ) -> u64 {
        let meta = super::filter::meta_of(process.as_ref(), &payload);
        self.tally.by_kind[usize::from(meta.kind & 0xff)].fetch_add(1, Ordering::Relaxed);
        if let Payload::EventsLost(lost) = &payload {
            self.count_lost(lost);
        }
        let mut event = Event {
            seq: 0,
            time: Some(timestamp(time)),
            node: String::new(),
            process,
            payload: Some(payload),
            instance: String::new(),
            session_id,
        };
        self.shared.queue.push(|seq, arena: &mut BytesMut| {
            event.seq = seq;
            arena.reserve(event.encoded_len() + self.tail.len());
            event.encode_raw(arena);
            arena.extend_from_slice(&self.tail);
            Record { seq, meta, bytes: arena.split().freeze() }
        })
    }

    fn count_lost(&self, lost: &proto::v1::EventsLost) {
        let source = proto::v1::LossSource::try_from(lost.source).unwrap_or_default();
        let source =
            source.as_str_name().strip_prefix("LOSS_SOURCE_").unwrap_or("unspecified").to_ascii_lowercase();
        let mut tally = self.tally.lost.lock().unwrap_or_else(PoisonError::into_inner);
        if lost.by_counter.is_empty() {
            *tally.entry((source.clone(), String::new())).or_default() += lost.count;
        }
        for (counter, count) in &lost.by_counter {
            *tally.entry((source.clone(), counter.clone())).or_default() += count;
        }
    }

    /// Events published by this instance, by kind.
    #[must_use]
    pub fn published_by_kind(&self) -> Vec<(proto::v1::EventKind, u64)> {
        (0..256)
            .filter_map(|n| {
                let kind = proto::v1::EventKind::try_from(n).ok()?;
                let count = self.tally.by_kind[usize::try_from(n).ok()?].load(Ordering::Relaxed);
                (kind != proto::v1::EventKind::Unspecified).then_some((kind, count))
            })
            .collect()
    }

    /// Events announced lost by this instance, by (source, counter).
    #[must_use]
    pub fn lost_by_reason(&self) -> Vec<((String, String), u64)> {
        let tally = self.tally.lost.lock().unwrap_or_else(PoisonError::into_inner);
        tally.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }

    /// Events in the memory window, and its capacity.
    #[must_use]
    pub fn memory_window(&self) -> (usize, usize) {
        let held = self.shared.ring.lock().unwrap_or_else(PoisonError::into_inner).len();
        (held, self.shared.memory_events)
    }

    /// Events published by this instance.
    #[must_use]
    pub fn published(&self) -> u64 {
        self.shared.queue.next_seq() - self.first_seq
    }

    /// The last sequence number readers can see.
    #[must_use]
    pub fn last_visible(&self) -> u64 {
        *self.shared.visible.borrow()
    }

    /// The next sequence number to be assigned.
    #[must_use]
    pub fn next_seq(&self) -> u64 {
        self.shared.queue.next_seq()
    }

    /// Readers right now.
    #[must_use]
    pub fn subscribers(&self) -> usize {
        self.outlets().len()
    }

    /// Every reader's state.
    #[must_use]
    pub fn outlets(&self) -> Vec<Arc<OutletState>> {
        let mut outlets = self.shared.outlets.lock().unwrap_or_else(PoisonError::into_inner);
        outlets.retain(|o| o.strong_count() > 0);
        outlets.iter().filter_map(std::sync::Weak::upgrade).collect()
    }

    /// The log's range and size on disk.
    #[must_use]
    pub fn extent(&self) -> Extent {
        self.shared.store.extent()
    }

    /// Batches the writer could not write (disk full, I/O errors).
    #[must_use]
    pub fn write_errors(&self) -> u64 {
        self.shared.write_errors.load(Ordering::Relaxed)
    }

    /// A reader from `since_seq` (0: from the next event on).
    #[must_use]
    pub fn cursor(&self, since_seq: u64, kind: OutletKind) -> Cursor {
        let next = if since_seq == 0 { self.last_visible() + 1 } else { since_seq };
        Cursor::new(Arc::clone(&self.shared), next, kind)
    }

    /// An event-at-a-time reader (for outlets that render each event).
    #[must_use]
    pub fn subscribe(&self, since_seq: u64, kind: OutletKind) -> Subscription {
        Subscription::new(self.cursor(since_seq, kind))
    }

    /// Writes what is queued, stops the writer and wakes every reader (they end).
    pub fn close(&self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        self.shared.queue.close();
        let handle = self.writer.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(handle) = handle {
            let _ = handle.join();
        }
        self.shared.visible.send_modify(|_| {});
    }
}

impl Drop for EventLog {
    fn drop(&mut self) {
        self.close();
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
        self.publish_in(time, process, session_id, payload)
    }
}

impl LogSettings {
    /// Defaults, in `dir`.
    #[must_use]
    pub fn in_dir(dir: PathBuf) -> Self {
        Self {
            store: StoreLimits { dir, segment_bytes: 64 << 20, max_bytes: 1 << 30 },
            memory_events: 16_384,
            sync_interval: Duration::from_secs(1),
        }
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

#[must_use]
pub fn timestamp(time: SystemTime) -> pbjson_types::Timestamp {
    let since = time.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    pbjson_types::Timestamp {
        seconds: i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(since.subsec_nanos()).unwrap_or(0),
    }
}

#[cfg(test)]
mod tests;

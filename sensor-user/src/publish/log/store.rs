//! The log directory: segments oldest first, the newest one appended to by the writer
//! thread alone, the oldest deleted when the size cap is reached. Readers read any
//! segment up to what the writer has finished writing.

use std::{
    collections::VecDeque,
    fs::File,
    io::Write as _,
    os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
    sync::{Mutex, PoisonError},
};

use thiserror::Error;

use super::{
    Gap, GapReason, Item, Record,
    segment::{self, Read, Reader, Segment},
};

#[derive(Debug, Error)]
pub enum StoreError {
    #[error(
        "cannot create the event log directory {path}: {source}; fix: create it (owned by root, mode 0700) or set publish.state_dir / --state-dir"
    )]
    Directory {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the event log directory {path} is not usable: {why}")]
    Unusable { path: PathBuf, why: String },
    #[error("cannot recover the event log segment {path}: {source}")]
    Recover {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Where and how big.
#[derive(Clone, Debug)]
pub struct StoreLimits {
    pub dir: PathBuf,
    /// A segment is closed and a new one started past this size.
    pub segment_bytes: u64,
    /// The oldest segments are deleted while the log is larger (the newest is kept).
    pub max_bytes: u64,
}

#[derive(Clone, Debug)]
struct SegmentState {
    segment: Segment,
    /// Bytes written (and readable).
    end: u64,
    last_seq: Option<u64>,
}

#[derive(Debug)]
struct State {
    segments: VecDeque<SegmentState>,
    total_bytes: u64,
    damaged: u64,
}

/// What was in the directory at start.
#[derive(Debug, Default)]
pub(super) struct Recovery {
    pub last_seq: Option<u64>,
    /// The last logged event's bytes: which instance logged last, and when.
    pub last_payload: Option<bytes::Bytes>,
    pub damaged_frames: u64,
    pub cut_bytes: u64,
}

/// The log's extent, for status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Extent {
    pub first_seq: u64,
    pub last_seq: u64,
    pub bytes: u64,
    pub segments: u32,
    pub damaged: u64,
}

pub(super) struct Store {
    limits: StoreLimits,
    state: Mutex<State>,
}

/// The writer thread's side: the newest segment, open for appending.
pub(super) struct Appender {
    file: File,
    bytes: u64,
}

impl Appender {
    /// Flushes the newest segment to the device.
    pub(super) fn sync(&self) {
        let _ = self.file.sync_data();
    }
}

impl Store {
    /// Opens (or creates) the log: the directory is forced to 0700, the newest segment
    /// is checked to its end and a torn tail cut.
    pub(super) fn open(limits: StoreLimits) -> Result<(Self, Appender, Recovery), StoreError> {
        prepare_directory(&limits.dir)?;
        let dir = limits.dir.clone();
        let found =
            segment::list(&dir).map_err(|source| StoreError::Directory { path: dir.clone(), source })?;
        let mut segments = VecDeque::new();
        let mut recovery = Recovery::default();
        let mut total_bytes = 0;
        let count = found.len();
        for (i, segment) in found.into_iter().enumerate() {
            let newest = i + 1 == count;
            let (end, last_seq) = if newest {
                let recovered = segment::recover(&segment.path)
                    .map_err(|source| StoreError::Recover { path: segment.path.clone(), source })?;
                recovery.damaged_frames += recovered.damaged;
                recovery.cut_bytes += recovered.cut;
                recovery.last_payload = recovered.last_payload;
                (recovered.valid_end, recovered.last_seq)
            } else {
                (std::fs::metadata(&segment.path).map_or(0, |m| m.len()), None)
            };
            total_bytes += end;
            segments.push_back(SegmentState { segment, end, last_seq });
        }
        recovery.last_seq = segments.back().and_then(|s| s.last_seq.or(s.segment.first_seq.checked_sub(1)));
        if recovery.last_seq == Some(0) {
            recovery.last_seq = None;
        }
        let next_seq = recovery.last_seq.map_or(1, |s| s + 1);
        if segments.is_empty() {
            segments.push_back(SegmentState {
                segment: Segment::new(&dir, next_seq),
                end: 0,
                last_seq: None,
            });
        }
        let newest = segments.back().map(|s| (s.segment.path.clone(), s.end)).unwrap_or_default();
        let file =
            open_for_append(&newest.0).map_err(|source| StoreError::Directory { path: newest.0, source })?;
        let state = State { segments, total_bytes, damaged: recovery.damaged_frames };
        let store = Self { limits, state: Mutex::new(state) };
        Ok((store, Appender { file, bytes: newest.1 }, recovery))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends encoded frames (sequence numbers `first..=last`), then rotates and
    /// enforces the size cap. One `write(2)` per batch: what it wrote survives the
    /// process being killed; the periodic sync makes it survive a power cut.
    pub(super) fn append(
        &self,
        appender: &mut Appender,
        frames: &[u8],
        last_seq: u64,
    ) -> std::io::Result<()> {
        let written = appender.file.write_all(frames);
        if written.is_ok() {
            appender.bytes += frames.len() as u64;
        } else {
            // Whatever part was written is a torn frame; put the end back where the
            // readers and the next batch expect it.
            let _ = appender.file.set_len(appender.bytes);
        }
        let mut state = self.state();
        if written.is_ok() {
            state.total_bytes += frames.len() as u64;
            if let Some(newest) = state.segments.back_mut() {
                newest.end = appender.bytes;
                newest.last_seq = Some(last_seq);
            }
        }
        if appender.bytes >= self.limits.segment_bytes {
            self.rotate(&mut state, appender, last_seq + 1)?;
        }
        self.enforce_cap(&mut state);
        written
    }

    fn rotate(&self, state: &mut State, appender: &mut Appender, next_seq: u64) -> std::io::Result<()> {
        let _ = appender.file.sync_data();
        let segment = Segment::new(&self.limits.dir, next_seq);
        let file = open_for_append(&segment.path)?;
        *appender = Appender { file, bytes: 0 };
        state.segments.push_back(SegmentState { segment, end: 0, last_seq: None });
        Ok(())
    }

    fn enforce_cap(&self, state: &mut State) {
        while state.total_bytes > self.limits.max_bytes && state.segments.len() > 1 {
            let Some(oldest) = state.segments.pop_front() else { break };
            state.total_bytes = state.total_bytes.saturating_sub(oldest.end);
            if let Err(error) = std::fs::remove_file(&oldest.segment.path) {
                tracing::warn!(path = %oldest.segment.path.display(), %error, "cannot delete an old event log segment");
            }
        }
    }

    pub(super) fn extent(&self) -> Extent {
        let state = self.state();
        let first_seq = state.segments.front().map_or(0, |s| s.segment.first_seq);
        let last_seq = state
            .segments
            .iter()
            .rev()
            .find_map(|s| s.last_seq)
            .unwrap_or_else(|| first_seq.saturating_sub(1));
        Extent {
            first_seq,
            last_seq,
            bytes: state.total_bytes,
            segments: u32::try_from(state.segments.len()).unwrap_or(u32::MAX),
            damaged: state.damaged,
        }
    }

    pub(super) fn dir(&self) -> &Path {
        &self.limits.dir
    }

    /// Reads logged events from `from` into `out` (at most `limit` events), with a gap
    /// item for every range the log cannot give. Returns the next sequence to read.
    pub(super) fn read(&self, position: &mut Position, from: u64, limit: usize, out: &mut Vec<Item>) -> u64 {
        let segments: Vec<SegmentState> = self.state().segments.iter().cloned().collect();
        let mut from = from;
        let oldest = segments.first().map_or(from, |s| s.segment.first_seq);
        if from < oldest {
            out.push(Item::Gap(Gap { first_seq: from, last_seq: oldest - 1, reason: GapReason::Retention }));
            from = oldest;
        }
        let Some(mut index) = segments.iter().rposition(|s| s.segment.first_seq <= from) else {
            return from;
        };
        if position.next_seq != from {
            // Not where the last read stopped: seek again.
            position.open = None;
        }
        let mut taken = 0;
        let mut pending = position.damage_pending.take();
        while taken < limit {
            let current = &segments[index];
            let newest = index + 1 == segments.len();
            let Some((reader, offset)) = position.reader_for(current, from) else {
                // Deleted by retention since the list was read.
                pending = Some(GapReason::Retention);
                index += 1;
                if index == segments.len() {
                    break;
                }
                continue;
            };
            match reader.read_at(*offset) {
                Read::Frame(frame) => {
                    *offset = frame.end();
                    let seq = frame.header.seq;
                    if seq < from {
                        continue;
                    }
                    if seq > from {
                        let reason = pending.take().unwrap_or(GapReason::Damaged);
                        out.push(Item::Gap(Gap { first_seq: from, last_seq: seq - 1, reason }));
                    }
                    pending = None;
                    out.push(Item::Event(Record { seq, meta: frame.header.meta, bytes: frame.payload }));
                    from = seq + 1;
                    taken += 1;
                }
                Read::Damaged => {
                    self.note_damage();
                    pending = Some(GapReason::Damaged);
                    match reader.resync(*offset) {
                        Some(frame) => *offset = frame.offset,
                        None => *offset = reader.end(),
                    }
                }
                Read::End if newest => break,
                Read::End => {
                    index += 1;
                    let next_first = segments[index].segment.first_seq;
                    if next_first > from {
                        let reason = pending.take().unwrap_or(GapReason::Damaged);
                        out.push(Item::Gap(Gap { first_seq: from, last_seq: next_first - 1, reason }));
                        from = next_first;
                    }
                }
            }
        }
        position.next_seq = from;
        position.damage_pending = pending;
        from
    }

    fn note_damage(&self) {
        self.state().damaged += 1;
    }
}

/// A reader's place in the log, kept between reads so that a sequential reader seeks
/// once.
#[derive(Default)]
pub(super) struct Position {
    open: Option<(u64, Reader, u64)>,
    next_seq: u64,
    damage_pending: Option<GapReason>,
}

impl Position {
    /// The open reader of `segment`, opened and positioned at `from` if it is not the
    /// one open.
    fn reader_for(&mut self, segment: &SegmentState, from: u64) -> Option<(&mut Reader, &mut u64)> {
        let reusable = matches!(&self.open, Some((first, _, _)) if *first == segment.segment.first_seq);
        if !reusable {
            let mut reader = Reader::open(&segment.segment.path, Some(segment.end)).ok()?;
            let offset = reader.seek(from);
            self.open = Some((segment.segment.first_seq, reader, offset));
        }
        let (_, reader, offset) = self.open.as_mut()?;
        reader.extend_to(segment.end);
        Some((reader, offset))
    }
}

fn prepare_directory(dir: &Path) -> Result<(), StoreError> {
    let directory_error = |source| StoreError::Directory { path: dir.to_path_buf(), source };
    std::fs::create_dir_all(dir).map_err(directory_error)?;
    let meta = std::fs::symlink_metadata(dir).map_err(directory_error)?;
    if !meta.is_dir() {
        return Err(StoreError::Unusable { path: dir.to_path_buf(), why: "not a directory".into() });
    }
    // What the SOC sees about the machine (paths, command lines) is kept here: only
    // the sensor's user may read it.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(directory_error)
}

fn open_for_append(path: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(path)
}

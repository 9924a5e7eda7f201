//! Segment files: `<first seq, 20 digits>.mwlog`, frames back to back. Readers use
//! positioned reads (`pread`) on their own descriptor, so they never disturb the writer,
//! and a segment deleted by retention stays readable by whoever holds it open.

use std::{
    fs::File,
    os::unix::fs::FileExt as _,
    path::{Path, PathBuf},
};

use bytes::Bytes;

use super::frame::{self, HEADER_BYTES, Header, MAGIC};

pub(super) const EXTENSION: &str = "mwlog";

/// A segment on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Segment {
    /// Every frame in it has at least this sequence number.
    pub(super) first_seq: u64,
    pub(super) path: PathBuf,
}

impl Segment {
    pub(super) fn new(dir: &Path, first_seq: u64) -> Self {
        Self { first_seq, path: dir.join(format!("{first_seq:020}.{EXTENSION}")) }
    }
}

/// The segments in `dir`, oldest first. Other files are ignored.
pub(super) fn list(dir: &Path) -> std::io::Result<Vec<Segment>> {
    let mut segments = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let first_seq = path
            .extension()
            .filter(|e| *e == EXTENSION)
            .and_then(|_| path.file_stem())
            .and_then(|stem| stem.to_str())
            .filter(|stem| stem.len() == 20)
            .and_then(|stem| stem.parse::<u64>().ok());
        if let Some(first_seq) = first_seq {
            segments.push(Segment { first_seq, path });
        }
    }
    segments.sort_by_key(|s| s.first_seq);
    Ok(segments)
}

/// One frame read back.
#[derive(Debug)]
pub(super) struct Frame {
    pub(super) header: Header,
    pub(super) offset: u64,
    pub(super) payload: Bytes,
}

impl Frame {
    pub(super) fn end(&self) -> u64 {
        self.offset + self.header.frame_bytes() as u64
    }
}

/// What is at an offset.
#[derive(Debug)]
pub(super) enum Read {
    Frame(Frame),
    /// Not a valid frame (damage, or a torn write at the tail).
    Damaged,
    /// The readable end.
    End,
}

/// Reads frames of one segment up to `end`, through a read-ahead window.
pub(super) struct Reader {
    file: File,
    /// Bytes past this are not read (the writer's durable end, or the file's length).
    end: u64,
    /// What was read last; payloads are slices of it (one copy from the page cache per
    /// window, none per event).
    window: Bytes,
    window_start: u64,
}

const WINDOW_BYTES: usize = 256 << 10;

impl Reader {
    pub(super) fn open(path: &Path, end: Option<u64>) -> std::io::Result<Self> {
        let file = File::open(path)?;
        let end = match end {
            Some(end) => end,
            None => file.metadata()?.len(),
        };
        Ok(Self { file, end, window: Bytes::new(), window_start: 0 })
    }

    pub(super) fn end(&self) -> u64 {
        self.end
    }

    /// Lets the reader see bytes the writer has added since.
    pub(super) fn extend_to(&mut self, end: u64) {
        self.end = self.end.max(end);
    }

    /// `len` bytes at `offset`, or `None` past the end or on a read error.
    fn bytes(&mut self, offset: u64, len: usize) -> Option<Bytes> {
        let wanted_end = offset.checked_add(len as u64)?;
        if wanted_end > self.end {
            return None;
        }
        let window_end = self.window_start + self.window.len() as u64;
        if offset < self.window_start || wanted_end > window_end {
            let size = usize::try_from((self.end - offset).min(WINDOW_BYTES.max(len) as u64)).ok()?;
            let mut fresh = vec![0u8; size];
            self.file.read_exact_at(&mut fresh, offset).ok()?;
            self.window = Bytes::from(fresh);
            self.window_start = offset;
        }
        let at = usize::try_from(offset - self.window_start).ok()?;
        (at + len <= self.window.len()).then(|| self.window.slice(at..at + len))
    }

    /// The frame at `offset`.
    pub(super) fn read_at(&mut self, offset: u64) -> Read {
        if offset >= self.end {
            return Read::End;
        }
        let Some(head) = self.bytes(offset, HEADER_BYTES) else { return Read::Damaged };
        let head: [u8; HEADER_BYTES] = head[..].try_into().unwrap_or([0; HEADER_BYTES]);
        let Some(header) = frame::parse_header(&head) else { return Read::Damaged };
        let Some(payload) = self.bytes(offset + HEADER_BYTES as u64, header.len as usize) else {
            return Read::Damaged;
        };
        if !frame::verify(&head, &header, &payload) {
            return Read::Damaged;
        }
        Read::Frame(Frame { header, offset, payload })
    }

    /// The first valid frame that starts after `offset`, searching by its magic.
    pub(super) fn resync(&mut self, offset: u64) -> Option<Frame> {
        let magic = MAGIC.to_le_bytes();
        let mut at = offset + 1;
        while at + HEADER_BYTES as u64 <= self.end {
            let chunk = usize::try_from((self.end - at).min(WINDOW_BYTES as u64)).ok()?;
            let found = self.bytes(at, chunk)?.windows(4).position(|w| w == magic);
            match found {
                Some(i) => {
                    let candidate = at + i as u64;
                    if let Read::Frame(frame) = self.read_at(candidate) {
                        return Some(frame);
                    }
                    at = candidate + 1;
                }
                // The magic may straddle the chunk's end.
                None => at += chunk.saturating_sub(3).max(1) as u64,
            }
        }
        None
    }

    /// The frame at `offset` or, when that is damaged, the next valid one.
    pub(super) fn read_or_resync(&mut self, offset: u64) -> Read {
        match self.read_at(offset) {
            Read::Damaged => self.resync(offset).map_or(Read::End, Read::Frame),
            other => other,
        }
    }

    /// The offset of the first frame with a sequence number of at least `seq`: a
    /// bisection over offsets (frames are found by their magic), then a short walk.
    pub(super) fn seek(&mut self, seq: u64) -> u64 {
        let (mut low, mut high) = (0u64, self.end);
        while high - low > WINDOW_BYTES as u64 {
            let middle = low + (high - low) / 2;
            match self.resync(middle.saturating_sub(1)) {
                Some(frame) if frame.offset < high && frame.header.seq < seq => low = frame.offset,
                _ => high = middle,
            }
        }
        let mut offset = low;
        loop {
            match self.read_or_resync(offset) {
                Read::Frame(frame) if frame.header.seq < seq => offset = frame.end(),
                Read::Frame(frame) => return frame.offset,
                Read::End | Read::Damaged => return self.end,
            }
        }
    }
}

/// What recovery found in the newest segment.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Recovered {
    /// Where the valid frames end (the file is cut here).
    pub(super) valid_end: u64,
    pub(super) last_seq: Option<u64>,
    /// The last frame's payload (its event tells which instance wrote it, and when).
    pub(super) last_payload: Option<Bytes>,
    /// Damaged stretches followed by valid frames (kept: readers skip them).
    pub(super) damaged: u64,
    /// Bytes cut from a torn tail.
    pub(super) cut: u64,
}

/// Scans a segment to its end: damage in the middle is counted and kept, a torn tail
/// (nothing valid after the damage) is cut off.
pub(super) fn recover(path: &Path) -> std::io::Result<Recovered> {
    let mut reader = Reader::open(path, None)?;
    let length = reader.end();
    let mut found = Recovered::default();
    let mut offset = 0;
    loop {
        match reader.read_at(offset) {
            Read::Frame(frame) => {
                offset = frame.end();
                found.last_seq = Some(frame.header.seq);
                found.last_payload = Some(frame.payload);
            }
            Read::End => break,
            Read::Damaged => match reader.resync(offset) {
                Some(frame) => {
                    found.damaged += 1;
                    offset = frame.offset;
                }
                None => break,
            },
        }
    }
    found.valid_end = offset;
    found.cut = length - offset;
    if found.cut > 0 {
        let file = std::fs::OpenOptions::new().write(true).open(path)?;
        file.set_len(offset)?;
        file.sync_data()?;
    }
    Ok(found)
}

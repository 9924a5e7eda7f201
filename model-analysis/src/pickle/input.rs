//! The walker's byte stream, read the way CPython's C unpickler (`_pickle.c`) reads a
//! file object that has no `peek` (an `io.BytesIO`, a raw file): every read asks the
//! file for exactly the bytes one opcode needs, except `FRAME`, which reads the whole
//! frame into a buffer that the following opcodes consume.
//!
//! That buffer makes the C unpickler diverge from a plain byte stream when a pickle's
//! frames are inconsistent, which no pickler writes:
//! - an argument that does not fit in what is left of the frame *drops* the rest of the
//!   frame and is read from the file after it (`_Unpickler_ReadImpl`);
//! - a `STOP` before the end of the frame leaves the file positioned at the frame's end,
//!   so the next `load()` skips the rest of it;
//! - a `FRAME` inside a frame is ignored when it fits in what is left of the current one.
//!
//! A reader with `peek` (a buffered file) sees some of these cases as a plain stream
//! instead, depending on buffer alignment. Every such case is recorded as a framing
//! anomaly: the walk follows the no-`peek` reading exactly, and the anomaly is a finding
//! of its own, because another reader may see other opcodes there.
//!
//! Bytes are counted and capped; payloads the analysis does not need (tensor bytes, long
//! strings) are skipped without being held, by seeking when the source can.

use std::io::{self, Read};
use std::rc::Rc;
use std::time::Instant;

mod lines;

const BUFFER_LEN: usize = 64 * 1024;
/// Payload chunks between two deadline checks.
const CHUNKS_PER_CLOCK_CHECK: u32 = 64;

/// A byte source for the walker: a stream that can skip ahead.
pub(crate) trait PickleSource: Read {
    /// Skips up to `n` bytes; returns how many were skipped (fewer at the end).
    fn skip_ahead(&mut self, n: u64) -> io::Result<u64>;
    /// Whether skipping costs nothing (a seek) rather than a read.
    fn skips_cheaply(&self) -> bool;
}

/// Any reader, skipping by reading and dropping (zip entries, in-memory data).
pub(crate) struct Streamed<R>(pub(crate) R);

impl<R: Read> Read for Streamed<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        self.0.read(out)
    }
}

impl<R: Read> PickleSource for Streamed<R> {
    fn skip_ahead(&mut self, n: u64) -> io::Result<u64> {
        io::copy(&mut (&mut self.0).take(n), &mut io::sink())
    }

    fn skips_cheaply(&self) -> bool {
        false
    }
}

/// Why reading stopped before the walker asked it to.
#[derive(Debug)]
pub(crate) enum Halt {
    /// The stream ended inside an opcode or before `STOP`.
    Truncated,
    /// The byte cap was reached.
    ByteLimit,
    Deadline,
    Io(io::Error),
}

/// A framing case where readers disagree (see the module comment).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FramingAnomaly {
    pub(crate) offset: u64,
    pub(crate) what: &'static str,
}

/// How an argument is read: `_Unpickler_Read` (drops the rest of a frame it does not
/// fit in) or `_Unpickler_ReadInto` (bytes and bytearray payloads: continues from the
/// frame into the file).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReadMode {
    Dropping,
    Continuing,
}

/// Whether a FRAME's declared length fits in the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FrameFit {
    Fits,
    /// Longer than what is left: CPython's C unpickler fails at the FRAME.
    Short,
}

/// A payload: its bytes when short enough to keep, else only its length.
pub(crate) enum Payload {
    Kept(Rc<[u8]>),
    Dropped,
}

pub(crate) struct Input<S> {
    src: S,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Stream offset of the next byte delivered.
    pos: u64,
    /// End of the current frame buffer, while `pos` is inside it.
    window_end: Option<u64>,
    /// The stream's length: reads past it fail as truncated.
    len: u64,
    /// Bytes read (not skipped by seeking), against `max_read`.
    read: u64,
    max_read: u64,
    deadline: Option<Instant>,
    anomaly: Option<FramingAnomaly>,
    /// Frames as a reader with `peek` sees small ones: a hint, the stream stays linear.
    linear: bool,
}

impl<S: PickleSource> Input<S> {
    pub(crate) fn new(src: S, len: u64, max_read: u64, deadline: Option<Instant>, linear: bool) -> Self {
        // Small inputs (sniffed prefixes, short entries) get a small buffer: sniffing
        // runs on every file the sensor sees.
        let buf_len = usize::try_from(len.saturating_add(1)).unwrap_or(BUFFER_LEN).clamp(16, BUFFER_LEN);
        Self {
            src,
            buf: vec![0; buf_len],
            start: 0,
            end: 0,
            pos: 0,
            window_end: None,
            len,
            read: 0,
            max_read,
            deadline,
            anomaly: None,
            linear,
        }
    }

    /// Offset of the next byte (the next opcode, between opcodes).
    pub(crate) fn offset(&self) -> u64 {
        self.pos
    }

    /// Bytes read so far, skipped payloads excluded when they were seeked over.
    pub(crate) fn bytes_read(&self) -> u64 {
        self.read
    }

    pub(crate) fn anomaly(&self) -> Option<&FramingAnomaly> {
        self.anomaly.as_ref()
    }

    /// Where the next `load()` starts after this stream's `STOP`: the end of the frame
    /// buffer when `STOP` came before it.
    pub(crate) fn next_stream_offset(&mut self) -> u64 {
        match self.window_end {
            Some(end) if end > self.pos => {
                self.note_anomaly("STOP before the end of its frame: the next pickle starts after the frame");
                end
            }
            _ => self.pos,
        }
    }

    fn note_anomaly(&mut self, what: &'static str) {
        if self.anomaly.is_none() {
            self.anomaly = Some(FramingAnomaly { offset: self.pos, what });
        }
    }

    fn window_left(&self) -> u64 {
        self.window_end.map_or(0, |end| end.saturating_sub(self.pos))
    }

    /// `_Unpickler_ReadImpl`: an `n`-byte read that does not fit in the frame buffer
    /// drops what is left of it and reads from the file after the frame.
    fn drop_window_for(&mut self, n: u64) -> Result<(), Halt> {
        let left = self.window_left();
        if self.window_end.is_some() && n > left {
            if left > 0 {
                self.note_anomaly(
                    "an argument runs past the end of its frame: the rest of the frame is dropped",
                );
                self.skip(left)?;
            }
            self.window_end = None;
        }
        Ok(())
    }

    fn leave_window_if_done(&mut self) {
        if self.window_end.is_some_and(|end| self.pos >= end) {
            self.window_end = None;
        }
    }

    fn fill(&mut self) -> Result<bool, Halt> {
        if self.start < self.end {
            return Ok(true);
        }
        if self.pos >= self.len {
            return Ok(false);
        }
        let want = usize::try_from(self.len - self.pos).unwrap_or(usize::MAX).min(self.buf.len());
        loop {
            match self.src.read(&mut self.buf[..want]) {
                Ok(0) => {
                    // The source is shorter than announced: that is where it ends.
                    self.len = self.pos;
                    return Ok(false);
                }
                Ok(n) => {
                    self.start = 0;
                    self.end = n;
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Halt::Io(e)),
            }
        }
    }

    fn count(&mut self, n: u64) -> Result<(), Halt> {
        self.read = self.read.saturating_add(n);
        if self.read > self.max_read {
            return Err(Halt::ByteLimit);
        }
        Ok(())
    }

    fn take_byte(&mut self) -> Result<Option<u8>, Halt> {
        if !self.fill()? {
            return Ok(None);
        }
        let byte = self.buf[self.start];
        self.start += 1;
        self.pos += 1;
        self.count(1)?;
        Ok(Some(byte))
    }

    /// Skips `n` bytes, seeking when the source can.
    fn skip(&mut self, n: u64) -> Result<(), Halt> {
        if n > self.len.saturating_sub(self.pos) {
            return Err(Halt::Truncated);
        }
        let buffered = (self.end - self.start) as u64;
        if n <= buffered {
            self.start += usize::try_from(n).unwrap_or(0);
            self.pos += n;
            return Ok(());
        }
        self.start = self.end;
        self.pos += buffered;
        let rest = n - buffered;
        if !self.src.skips_cheaply() {
            self.count(rest)?;
        }
        let skipped = self.src.skip_ahead(rest).map_err(Halt::Io)?;
        self.pos += skipped;
        if skipped < rest {
            self.len = self.pos;
            return Err(Halt::Truncated);
        }
        Ok(())
    }

    /// Bytes left in the stream.
    pub(crate) fn remaining(&self) -> u64 {
        self.len.saturating_sub(self.pos)
    }

    /// Up to `max` of the next bytes, without consuming them.
    pub(crate) fn peek_ahead(&mut self, max: usize) -> Result<Vec<u8>, Halt> {
        let want = usize::try_from(self.remaining()).unwrap_or(usize::MAX).min(max);
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.buf.len() < want {
            self.buf.resize(want, 0);
        }
        while self.end < want {
            match self.src.read(&mut self.buf[self.end..want]) {
                Ok(0) => break,
                Ok(n) => self.end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Halt::Io(e)),
            }
        }
        Ok(self.buf[..self.end.min(want)].to_vec())
    }

    /// Takes `n` bytes straight from the buffer when they are there and inside the
    /// current frame (the common case): no drop, no refill.
    fn fast_take(&mut self, n: usize) -> Option<&[u8]> {
        let inside_window = self.window_end.is_none_or(|end| self.pos + n as u64 <= end);
        if self.end - self.start < n || !inside_window || self.read + n as u64 > self.max_read {
            return None;
        }
        let start = self.start;
        self.start += n;
        self.pos += n as u64;
        self.read += n as u64;
        if self.window_end == Some(self.pos) {
            self.window_end = None;
        }
        Some(&self.buf[start..start + n])
    }

    /// The next opcode byte; `None` at the end of the stream.
    pub(crate) fn opcode(&mut self) -> Result<Option<u8>, Halt> {
        if let Some(&[byte]) = self.fast_take(1) {
            return Ok(Some(byte));
        }
        self.drop_window_for(1)?;
        let byte = self.take_byte()?;
        self.leave_window_if_done();
        Ok(byte)
    }

    /// A fixed-size little-endian argument of at most 8 bytes.
    pub(crate) fn fixed(&mut self, len: u8) -> Result<u64, Halt> {
        if let Some(bytes) = self.fast_take(usize::from(len)) {
            let mut raw = [0u8; 8];
            raw[..bytes.len()].copy_from_slice(bytes);
            return Ok(u64::from_le_bytes(raw));
        }
        self.drop_window_for(u64::from(len))?;
        if u64::from(len) > self.len.saturating_sub(self.pos) {
            return Err(Halt::Truncated);
        }
        let mut value = 0u64;
        for i in 0..len {
            let byte = self.take_byte()?.ok_or(Halt::Truncated)?;
            value |= u64::from(byte) << (8 * u32::from(i));
        }
        self.leave_window_if_done();
        Ok(value)
    }

    /// `n` bytes of payload, kept when at most `keep` long.
    pub(crate) fn payload(&mut self, n: u64, keep: usize, mode: ReadMode) -> Result<Payload, Halt> {
        if n <= keep as u64
            && n <= 4096
            && let Some(bytes) = self.fast_take(usize::try_from(n).unwrap_or(usize::MAX))
        {
            return Ok(Payload::Kept(Rc::from(bytes)));
        }
        match mode {
            ReadMode::Dropping => self.drop_window_for(n)?,
            ReadMode::Continuing => {
                if self.window_left() > 0 && n > self.window_left() {
                    self.note_anomaly("a payload runs past the end of its frame");
                }
            }
        }
        if n > self.len.saturating_sub(self.pos) {
            return Err(Halt::Truncated);
        }
        let payload = if n <= keep as u64 {
            Payload::Kept(Rc::from(self.read_kept(n)?))
        } else {
            self.read_dropped(n)?
        };
        self.leave_window_if_done();
        Ok(payload)
    }

    fn read_kept(&mut self, n: u64) -> Result<Vec<u8>, Halt> {
        let mut out = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
        let mut left = n;
        while left > 0 {
            if !self.fill()? {
                return Err(Halt::Truncated);
            }
            let take = usize::try_from(left).unwrap_or(usize::MAX).min(self.end - self.start);
            out.extend_from_slice(&self.buf[self.start..self.start + take]);
            self.start += take;
            self.pos += take as u64;
            self.count(take as u64)?;
            left -= take as u64;
            self.check_clock_every(&mut 0)?;
        }
        Ok(out)
    }

    fn read_dropped(&mut self, n: u64) -> Result<Payload, Halt> {
        let buffered = (self.end - self.start) as u64;
        if self.src.skips_cheaply() || n <= buffered {
            self.skip(n)?;
            return Ok(Payload::Dropped);
        }
        let mut left = n;
        let mut chunks = 0u32;
        while left > 0 {
            if !self.fill()? {
                return Err(Halt::Truncated);
            }
            let take = usize::try_from(left).unwrap_or(usize::MAX).min(self.end - self.start);
            self.start += take;
            self.pos += take as u64;
            self.count(take as u64)?;
            left -= take as u64;
            self.check_clock_every(&mut chunks)?;
        }
        Ok(Payload::Dropped)
    }

    fn check_clock_every(&self, chunks: &mut u32) -> Result<(), Halt> {
        *chunks = chunks.wrapping_add(1);
        if chunks.is_multiple_of(CHUNKS_PER_CLOCK_CHECK) && self.deadline.is_some_and(|d| Instant::now() >= d)
        {
            return Err(Halt::Deadline);
        }
        Ok(())
    }

    /// `load_frame` after its 8-byte length: the frame is read whole (failing when the
    /// stream is shorter), unless it fits in what is left of the current frame. In
    /// linear mode (a reader with `peek`), the frame is only looked at.
    pub(crate) fn frame(&mut self, len: u64) -> Result<FrameFit, Halt> {
        if self.linear {
            // The frame is peeked, not consumed: only its presence is checked.
            return Ok(if len > self.len.saturating_sub(self.pos) {
                FrameFit::Short
            } else {
                FrameFit::Fits
            });
        }
        let left = self.window_left();
        if self.window_end.is_some() && left > 0 {
            self.note_anomaly("a FRAME inside another frame");
        }
        if self.window_end.is_some() && len <= left {
            return Ok(FrameFit::Fits);
        }
        if len == 0 && self.window_end.is_none() {
            return Ok(FrameFit::Fits);
        }
        self.drop_window_for(len)?;
        let available = self.len.saturating_sub(self.pos);
        if len > available {
            // The C unpickler reads the whole frame first and fails; the pure-Python
            // one takes what there is as the frame.
            self.window_end = Some(self.len);
            return Ok(FrameFit::Short);
        }
        self.window_end = Some(self.pos + len);
        Ok(FrameFit::Fits)
    }
}

#[cfg(test)]
mod tests;

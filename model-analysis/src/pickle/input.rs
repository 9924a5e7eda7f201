//! The walker's byte stream: buffered, counted and capped. Payloads the analysis does
//! not need (tensor bytes, long strings) are read and dropped in chunks, never held.

use std::io::{self, Read};
use std::time::Instant;

const BUFFER_LEN: usize = 64 * 1024;

/// Why reading stopped before the walker asked it to.
#[derive(Debug)]
pub(super) enum Halt {
    /// The input ended (in the middle of an opcode, or exactly between two).
    EndOfInput {
        between_opcodes: bool,
    },
    /// The byte cap was reached.
    ByteLimit,
    Deadline,
    Io(io::Error),
}

pub(super) struct Input<R> {
    inner: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    consumed: u64,
    max_bytes: u64,
    /// Bytes known to remain, when the input's length is known: a length prefix past
    /// it fails at once instead of after reading to the end.
    len_hint: Option<u64>,
    deadline: Option<Instant>,
}

impl<R: Read> Input<R> {
    pub(super) fn new(inner: R, max_bytes: u64, len_hint: Option<u64>, deadline: Option<Instant>) -> Self {
        // Small inputs (sniffed prefixes, short entries) get a small buffer: sniffing runs
        // on every file the sensor sees.
        let cap = len_hint.unwrap_or(max_bytes).min(max_bytes).saturating_add(1);
        let buf_len = usize::try_from(cap).unwrap_or(BUFFER_LEN).clamp(16, BUFFER_LEN);
        Self { inner, buf: vec![0; buf_len], start: 0, end: 0, consumed: 0, max_bytes, len_hint, deadline }
    }

    /// Bytes consumed so far (the offset of the next opcode).
    pub(super) fn offset(&self) -> u64 {
        self.consumed
    }

    fn fill(&mut self) -> Result<bool, Halt> {
        if self.start < self.end {
            return Ok(true);
        }
        loop {
            match self.inner.read(&mut self.buf) {
                Ok(0) => return Ok(false),
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

    fn advance(&mut self, n: usize) -> Result<(), Halt> {
        self.start += n;
        self.consumed += n as u64;
        if self.consumed > self.max_bytes {
            return Err(Halt::ByteLimit);
        }
        Ok(())
    }

    /// The next opcode byte, `None` at a clean end of input.
    pub(super) fn opcode(&mut self) -> Result<Option<u8>, Halt> {
        if !self.fill()? {
            return Ok(None);
        }
        let byte = self.buf[self.start];
        self.advance(1)?;
        Ok(Some(byte))
    }

    fn byte(&mut self) -> Result<u8, Halt> {
        if !self.fill()? {
            return Err(Halt::EndOfInput { between_opcodes: false });
        }
        let byte = self.buf[self.start];
        self.advance(1)?;
        Ok(byte)
    }

    /// A fixed-size argument (at most 8 bytes), little-endian into a u64.
    pub(super) fn fixed(&mut self, len: u8) -> Result<u64, Halt> {
        let mut value = 0u64;
        for i in 0..len {
            value |= u64::from(self.byte()?) << (8 * u32::from(i));
        }
        Ok(value)
    }

    /// `len` bytes of payload: returned when at most `keep` long, else read and dropped.
    pub(super) fn payload(&mut self, len: u64, keep: usize) -> Result<Option<Vec<u8>>, Halt> {
        if let Some(hint) = self.len_hint
            && len > hint.saturating_sub(self.consumed)
        {
            return Err(Halt::EndOfInput { between_opcodes: false });
        }
        let mut kept = (len <= keep as u64).then(Vec::new);
        let mut left = len;
        let mut chunks = 0u32;
        while left > 0 {
            if !self.fill()? {
                return Err(Halt::EndOfInput { between_opcodes: false });
            }
            let n = usize::try_from(left).unwrap_or(usize::MAX).min(self.end - self.start);
            if let Some(kept) = kept.as_mut() {
                kept.extend_from_slice(&self.buf[self.start..self.start + n]);
            }
            self.advance(n)?;
            left -= n as u64;
            chunks = chunks.wrapping_add(1);
            if chunks.is_multiple_of(64) && self.deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(Halt::Deadline);
            }
        }
        Ok(kept)
    }

    /// A newline-terminated argument, without the newline: returned when at most `keep`
    /// long, else read and dropped.
    pub(super) fn line(&mut self, keep: usize) -> Result<Option<Vec<u8>>, Halt> {
        let mut kept = Some(Vec::new());
        loop {
            if !self.fill()? {
                return Err(Halt::EndOfInput { between_opcodes: false });
            }
            let window = &self.buf[self.start..self.end];
            let newline = window.iter().position(|&b| b == b'\n');
            let take = newline.unwrap_or(window.len());
            if let Some(line) = kept.as_mut() {
                if line.len() + take > keep {
                    kept = None;
                } else {
                    line.extend_from_slice(&window[..take]);
                }
            }
            match newline {
                Some(_) => {
                    self.advance(take + 1)?;
                    return Ok(kept);
                }
                None => self.advance(take)?,
            }
        }
    }
}

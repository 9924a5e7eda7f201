//! Newline-terminated arguments (`INT`, `GLOBAL`, `STRING`... in protocol 0), read the
//! way `_Unpickler_Readline` reads them: a line that does not end inside the frame
//! buffer drops the rest of the frame and is read from the file after it.

use std::io;
use std::time::Instant;

use super::{BUFFER_LEN, Halt, Input, PickleSource};

impl<S: PickleSource> Input<S> {
    /// A newline-terminated argument, without its newline; `None` when longer than
    /// `keep`. `_Unpickler_Readline`: a line that does not end inside the frame buffer
    /// drops the rest of the frame and is read from the file after it.
    pub(crate) fn line(&mut self, keep: usize) -> Result<Option<Vec<u8>>, Halt> {
        if let Some(window_end) = self.window_end
            && window_end > self.pos
            && !self.newline_before(window_end)?
        {
            self.note_anomaly(
                "a text argument runs past the end of its frame: the rest of the frame is dropped",
            );
            self.skip(window_end - self.pos)?;
            self.window_end = None;
        }
        let line = self.read_line(keep)?;
        self.leave_window_if_done();
        Ok(line)
    }

    /// Whether a newline lies in `[pos, end)`, looking ahead without consuming. The
    /// frame was read whole by the unpickler, so looking at all of it is what it does;
    /// the look-ahead reads at most one buffer at a time and stops at the first newline.
    fn newline_before(&mut self, end: u64) -> Result<bool, Halt> {
        let window = end - self.pos;
        let buffered = &self.buf[self.start..self.end];
        let visible = usize::try_from(window).unwrap_or(usize::MAX).min(buffered.len());
        if buffered[..visible].contains(&b'\n') {
            return Ok(true);
        }
        if visible as u64 >= window {
            return Ok(false);
        }
        self.scan_ahead_for_newline(window)
    }

    /// Slow path of [`Self::newline_before`]: the frame is longer than the buffer. Moves
    /// the buffered bytes to the front and reads on until a newline or the frame's end;
    /// the bytes stay buffered for the reads that follow.
    fn scan_ahead_for_newline(&mut self, window: u64) -> Result<bool, Halt> {
        let mut checked = self.end - self.start;
        loop {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            if self.end == self.buf.len() {
                // A line longer than the buffer inside a frame: grow once, within the
                // stream's byte cap (each byte is counted when it is consumed).
                let grown = (self.buf.len() * 2)
                    .min(usize::try_from(self.max_read).unwrap_or(usize::MAX).max(BUFFER_LEN));
                if grown <= self.buf.len() {
                    return Err(Halt::ByteLimit);
                }
                self.buf.resize(grown, 0);
            }
            let room = self.buf.len() - self.end;
            let remaining_in_stream = self.len.saturating_sub(self.pos + self.end as u64);
            let want = usize::try_from(remaining_in_stream).unwrap_or(usize::MAX).min(room);
            if want == 0 {
                return Ok(false);
            }
            let n = loop {
                match self.src.read(&mut self.buf[self.end..self.end + want]) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(Halt::Io(e)),
                }
            };
            if n == 0 {
                self.len = self.pos + self.end as u64;
                return Ok(false);
            }
            let fresh_end = self.end + n;
            let limit = usize::try_from(window).unwrap_or(usize::MAX).min(fresh_end);
            if limit > checked && self.buf[checked..limit].contains(&b'\n') {
                self.end = fresh_end;
                return Ok(true);
            }
            self.end = fresh_end;
            checked = limit;
            if checked as u64 >= window {
                return Ok(false);
            }
            if self.deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(Halt::Deadline);
            }
        }
    }

    fn read_line(&mut self, keep: usize) -> Result<Option<Vec<u8>>, Halt> {
        let mut kept = Some(Vec::new());
        let mut chunks = 0u32;
        loop {
            if !self.fill()? {
                return Err(Halt::Truncated);
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
            let consumed = take + usize::from(newline.is_some());
            self.start += consumed;
            self.pos += consumed as u64;
            self.count(consumed as u64)?;
            if newline.is_some() {
                return Ok(kept);
            }
            self.check_clock_every(&mut chunks)?;
        }
    }
}

//! A bounds-checked, buffered view of the file under analysis. Every read knows the
//! file's size: a length that points past the end is an error before anything is read
//! or allocated, and skipping (the common case for tensor data and token arrays) is a
//! position change, not a read.

use std::io::{self, Read, Seek, SeekFrom};

const BUFFER_LEN: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadError {
    #[error("the file ends at byte {len}, but {wanted} bytes were needed at offset {at}")]
    Truncated { at: u64, wanted: u64, len: u64 },
    #[error("reading at offset {at} failed")]
    Io {
        at: u64,
        #[source]
        source: io::Error,
    },
}

pub(crate) struct Source<'r, R> {
    inner: &'r mut R,
    len: u64,
    pos: u64,
    buf: Vec<u8>,
    /// File offset of `buf[0]`.
    buf_start: u64,
    /// Where the inner reader is positioned, when known (saves a seek per refill).
    inner_pos: Option<u64>,
}

impl<'r, R: Read + Seek> Source<'r, R> {
    pub(crate) fn new(inner: &'r mut R, len: u64) -> Self {
        Self { inner, len, pos: 0, buf: Vec::new(), buf_start: 0, inner_pos: None }
    }

    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    pub(crate) fn pos(&self) -> u64 {
        self.pos
    }

    pub(crate) fn remaining(&self) -> u64 {
        self.len.saturating_sub(self.pos)
    }

    /// Moves to `pos`, which must lie within the file (the end included).
    pub(crate) fn seek_to(&mut self, pos: u64) -> Result<(), ReadError> {
        if pos > self.len {
            return Err(ReadError::Truncated { at: pos, wanted: 0, len: self.len });
        }
        self.pos = pos;
        Ok(())
    }

    /// Skips `n` bytes without reading them.
    pub(crate) fn skip(&mut self, n: u64) -> Result<(), ReadError> {
        if n > self.remaining() {
            return Err(self.truncated(n));
        }
        self.pos += n;
        Ok(())
    }

    fn truncated(&self, wanted: u64) -> ReadError {
        ReadError::Truncated { at: self.pos, wanted, len: self.len }
    }

    /// Reads exactly `out.len()` bytes.
    pub(crate) fn read_exact(&mut self, out: &mut [u8]) -> Result<(), ReadError> {
        let wanted = out.len() as u64;
        if wanted > self.remaining() {
            return Err(self.truncated(wanted));
        }
        let mut done = 0;
        while done < out.len() {
            if !self.in_buffer() {
                self.refill()?;
            }
            let offset = usize::try_from(self.pos - self.buf_start).unwrap_or(usize::MAX);
            let available = &self.buf[offset..];
            let n = available.len().min(out.len() - done);
            out[done..done + n].copy_from_slice(&available[..n]);
            done += n;
            self.pos += n as u64;
        }
        Ok(())
    }

    /// Reads `n` bytes into a new vector; the caller has capped `n`.
    pub(crate) fn read_vec(&mut self, n: u64) -> Result<Vec<u8>, ReadError> {
        if n > self.remaining() {
            return Err(self.truncated(n));
        }
        let len = usize::try_from(n).map_err(|_| self.truncated(n))?;
        let mut out = vec![0; len];
        self.read_exact(&mut out)?;
        Ok(out)
    }

    /// Reads up to `out.len()` bytes (fewer only at the end of the file).
    pub(crate) fn read_up_to(&mut self, out: &mut [u8]) -> Result<usize, ReadError> {
        let n = usize::try_from(self.remaining()).unwrap_or(usize::MAX).min(out.len());
        self.read_exact(&mut out[..n])?;
        Ok(n)
    }

    /// Reads a few bytes at `pos` straight from the file, without filling the buffer:
    /// for sparse probes far apart, where a 64 KiB refill per probe would waste reads.
    pub(crate) fn probe(&mut self, pos: u64, out: &mut [u8]) -> Result<(), ReadError> {
        let wanted = out.len() as u64;
        if pos.checked_add(wanted).is_none_or(|end| end > self.len) {
            return Err(ReadError::Truncated { at: pos, wanted, len: self.len });
        }
        let io_err = |source| ReadError::Io { at: pos, source };
        self.inner_pos = None;
        self.inner.seek(SeekFrom::Start(pos)).map_err(io_err)?;
        self.inner.read_exact(out).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => ReadError::Truncated { at: pos, wanted, len: pos },
            _ => io_err(e),
        })?;
        self.inner_pos = Some(pos + wanted);
        Ok(())
    }

    pub(crate) fn u8(&mut self) -> Result<u8, ReadError> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16, ReadError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, ReadError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, ReadError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], ReadError> {
        let mut out = [0u8; N];
        self.read_exact(&mut out)?;
        Ok(out)
    }

    fn in_buffer(&self) -> bool {
        self.pos >= self.buf_start && self.pos < self.buf_start + self.buf.len() as u64
    }

    fn refill(&mut self) -> Result<(), ReadError> {
        let at = self.pos;
        let io_err = |source| ReadError::Io { at, source };
        if self.inner_pos != Some(at) {
            self.inner.seek(SeekFrom::Start(at)).map_err(io_err)?;
        }
        let want = usize::try_from(self.remaining()).unwrap_or(BUFFER_LEN).min(BUFFER_LEN);
        self.buf.resize(want, 0);
        let mut filled = 0;
        while filled < want {
            match self.inner.read(&mut self.buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.inner_pos = None;
                    self.buf.clear();
                    return Err(io_err(e));
                }
            }
        }
        self.buf.truncate(filled);
        self.buf_start = at;
        self.inner_pos = Some(at + filled as u64);
        if filled == 0 {
            // The file is shorter than the size we were told: it shrank, or the caller
            // lied. Either way the bytes are not there.
            return Err(ReadError::Truncated { at, wanted: 1, len: at });
        }
        Ok(())
    }
}

/// Reading a `Source` as a stream from its current position (for the pickle walker and
/// the inflater). Reads stop at the end of the file.
impl<R: Read + Seek> Read for Source<'_, R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.remaining() == 0 || out.is_empty() {
            return Ok(0);
        }
        if !self.in_buffer() {
            self.refill().map_err(io::Error::other)?;
        }
        let offset = usize::try_from(self.pos - self.buf_start).unwrap_or(usize::MAX);
        let available = &self.buf[offset..];
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.pos += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn reads_integers_and_skips_across_buffer_boundaries() {
        let mut data = vec![0u8; BUFFER_LEN * 2 + 16];
        data[BUFFER_LEN - 2..BUFFER_LEN + 2].copy_from_slice(&0xdead_beef_u32.to_le_bytes());
        let mut cursor = Cursor::new(data);
        let mut src = Source::new(&mut cursor, (BUFFER_LEN * 2 + 16) as u64);
        src.skip(BUFFER_LEN as u64 - 2).expect("skip");
        assert_eq!(src.u32().expect("u32"), 0xdead_beef);
        src.seek_to(0).expect("seek");
        assert_eq!(src.u8().expect("u8"), 0);
        assert!(matches!(src.skip(u64::MAX), Err(ReadError::Truncated { .. })));
    }

    #[test]
    fn lengths_past_the_end_fail_before_allocating() {
        let mut cursor = Cursor::new(vec![1u8; 8]);
        let mut src = Source::new(&mut cursor, 8);
        assert!(matches!(src.read_vec(u64::MAX), Err(ReadError::Truncated { .. })));
        assert_eq!(src.read_vec(8).expect("vec"), vec![1u8; 8]);
        assert!(src.u8().is_err());
    }

    #[test]
    fn a_file_shorter_than_announced_is_truncated_not_a_hang() {
        let mut cursor = Cursor::new(vec![1u8; 4]);
        let mut src = Source::new(&mut cursor, 100);
        assert!(matches!(src.u64(), Err(ReadError::Truncated { .. })));
    }
}

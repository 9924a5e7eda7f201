//! One logged event on disk: a fixed header, then the event's protobuf bytes.
//!
//! ```text
//! 0   magic     u32  "MWL1": where a frame starts (lets a reader find the next frame
//!                    after damage)
//! 4   len       u32  payload bytes
//! 8   seq       u64
//! 16  pid       u32  the event's process (0: none), for filters that skip decoding
//! 20  kind      u16  EventKind number
//! 22  severity  u8   Severity number
//! 23  flags     u8   0
//! 24  crc       u32  CRC-32 of bytes 4..24 and the payload
//! 28  payload
//! ```
//! All integers little-endian. A frame is valid only if its magic, length bound and
//! checksum hold, so a torn write or flipped bits are found, never decoded.

/// "MWL1" read as a little-endian u32.
pub(super) const MAGIC: u32 = u32::from_le_bytes(*b"MWL1");
pub(super) const HEADER_BYTES: usize = 28;
/// No event comes near this; a larger length is damage.
pub(super) const MAX_PAYLOAD: usize = 16 << 20;

/// What a reader may know about an event without decoding it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Meta {
    pub pid: u32,
    /// `EventKind` number.
    pub kind: u16,
    /// `Severity` number.
    pub severity: u8,
}

/// A frame header as read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Header {
    pub(super) len: u32,
    pub(super) seq: u64,
    pub(super) meta: Meta,
    pub(super) crc: u32,
}

impl Header {
    /// Bytes the whole frame takes.
    pub(super) fn frame_bytes(&self) -> usize {
        HEADER_BYTES + self.len as usize
    }
}

/// Appends one frame to `out`.
pub(super) fn encode(out: &mut Vec<u8>, seq: u64, meta: Meta, payload: &[u8]) {
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    let start = out.len();
    out.extend_from_slice(&MAGIC.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&meta.pid.to_le_bytes());
    out.extend_from_slice(&meta.kind.to_le_bytes());
    out.push(meta.severity);
    out.push(0);
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&out[start + 4..start + 24]);
    hasher.update(payload);
    out.extend_from_slice(&hasher.finalize().to_le_bytes());
    out.extend_from_slice(payload);
}

/// Parses a header; `None` when the magic or the length bound is wrong. The checksum
/// is checked by [`verify`], once the payload is read.
pub(super) fn parse_header(bytes: &[u8; HEADER_BYTES]) -> Option<Header> {
    let u32_at = |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    if u32_at(0) != MAGIC {
        return None;
    }
    let len = u32_at(4);
    if len as usize > MAX_PAYLOAD {
        return None;
    }
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&bytes[8..16]);
    Some(Header {
        len,
        seq: u64::from_le_bytes(seq),
        meta: Meta { pid: u32_at(16), kind: u16::from_le_bytes([bytes[20], bytes[21]]), severity: bytes[22] },
        crc: u32_at(24),
    })
}

/// Whether the header's checksum matches it and its payload.
pub(super) fn verify(header_bytes: &[u8; HEADER_BYTES], header: &Header, payload: &[u8]) -> bool {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&header_bytes[4..24]);
    hasher.update(payload);
    hasher.finalize() == header.crc
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header_of(frame: &[u8]) -> [u8; HEADER_BYTES] {
        frame[..HEADER_BYTES].try_into().expect("a header")
    }

    #[test]
    fn a_frame_reads_back_and_any_flipped_bit_is_found() {
        let meta = Meta { pid: 42, kind: 13, severity: 4 };
        let mut frame = Vec::new();
        encode(&mut frame, 7, meta, b"payload bytes");
        let header = parse_header(&header_of(&frame)).expect("valid header");
        assert_eq!((header.seq, header.meta, header.frame_bytes()), (7, meta, frame.len()));
        assert!(verify(&header_of(&frame), &header, &frame[HEADER_BYTES..]));
        for bit in 0..frame.len() * 8 {
            let mut damaged = frame.clone();
            damaged[bit / 8] ^= 1 << (bit % 8);
            let found = parse_header(&header_of(&damaged)).is_none_or(|h| {
                h.len as usize != damaged.len() - HEADER_BYTES
                    || !verify(&header_of(&damaged), &h, &damaged[HEADER_BYTES..])
            });
            assert!(found, "bit {bit} flipped unnoticed");
        }
    }

    #[test]
    fn an_absurd_length_is_damage() {
        let mut frame = Vec::new();
        encode(&mut frame, 1, Meta::default(), b"x");
        frame[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(parse_header(&header_of(&frame)), None);
    }
}

//! Makes stock gRPC clients work on the Unix socket. grpcio (C-core) sends the
//! percent-encoded socket path as `:authority` ("%2Frun%2Fmodelwatch%2F..."), grpc-java
//! the raw path; the HTTP/2 server library rejects both as malformed URIs and resets
//! the stream (PROTOCOL_ERROR), so every call failed unless the client knew to set
//! `grpc.default_authority`. The authority means nothing on a Unix socket, so this
//! shim, between the socket and the HTTP/2 server, replaces an invalid one with
//! `localhost` (what grpc-go and the Kubernetes clients send).
//!
//! How: client-to-server header blocks (HEADERS + CONTINUATION frames) are decoded with
//! an HPACK decoder that follows the client's dynamic table, and re-encoded as literals
//! without indexing (so the server's decoder table never needs to agree with the
//! client's). Every other frame, and everything the server sends, passes unchanged.
//! Header blocks are per call, not per message: the event stream is untouched.

use std::{
    io,
    pin::Pin,
    task::{Context, Poll, ready},
};

use bytes::{Buf as _, BufMut as _, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

const PREFACE_BYTES: usize = 24;
const FRAME_HEADER: usize = 9;
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
/// The server's default SETTINGS_MAX_FRAME_SIZE: re-encoded blocks are split to it.
const MAX_FRAME: usize = 16_384;
/// A header block larger than this is refused (the connection is closed).
const MAX_BLOCK: usize = 256 << 10;
/// The server's SETTINGS_HEADER_TABLE_SIZE (the HTTP/2 default).
const TABLE_SIZE: usize = 4096;

/// The replacement for an authority the server would reject.
const LOCAL_AUTHORITY: &[u8] = b"localhost";

/// Rewrites `:authority` in what the client sends over `io`.
pub struct AuthorityFix<IO> {
    io: IO,
    preface_left: usize,
    /// Bytes of the current non-header frame still to pass through.
    passing: usize,
    raw: BytesMut,
    ready: BytesMut,
    /// A header block being collected: stream id, END_STREAM, fragments so far.
    block: Option<(u32, bool, Vec<u8>)>,
    decoder: loona_hpack::Decoder<'static>,
    eof: bool,
}

impl<IO> AuthorityFix<IO> {
    pub fn new(io: IO) -> Self {
        let mut decoder = loona_hpack::Decoder::new();
        decoder.set_max_allowed_table_size(TABLE_SIZE);
        Self {
            io,
            preface_left: PREFACE_BYTES,
            passing: 0,
            raw: BytesMut::with_capacity(16 << 10),
            ready: BytesMut::with_capacity(16 << 10),
            block: None,
            decoder,
            eof: false,
        }
    }

    pub fn get_ref(&self) -> &IO {
        &self.io
    }

    /// Moves what can be decided from `raw` to `ready`.
    fn process(&mut self) -> io::Result<()> {
        loop {
            if self.preface_left > 0 || self.passing > 0 {
                let left = if self.preface_left > 0 { &mut self.preface_left } else { &mut self.passing };
                let n = (*left).min(self.raw.len());
                if n == 0 {
                    return Ok(());
                }
                self.ready.extend_from_slice(&self.raw.split_to(n));
                *left -= n;
                continue;
            }
            if self.raw.len() < FRAME_HEADER {
                return Ok(());
            }
            let length =
                usize::from(self.raw[0]) << 16 | usize::from(self.raw[1]) << 8 | usize::from(self.raw[2]);
            let (kind, flags) = (self.raw[3], self.raw[4]);
            let stream =
                u32::from_be_bytes([self.raw[5], self.raw[6], self.raw[7], self.raw[8]]) & 0x7fff_ffff;
            let in_block = self.block.is_some();
            if kind != HEADERS && kind != CONTINUATION && !in_block {
                self.passing = FRAME_HEADER + length;
                continue;
            }
            if (kind == CONTINUATION) != in_block {
                return Err(protocol("a CONTINUATION frame out of place"));
            }
            if self.raw.len() < FRAME_HEADER + length {
                return Ok(());
            }
            self.raw.advance(FRAME_HEADER);
            let payload = self.raw.split_to(length);
            let fragment = if kind == HEADERS { strip_headers_frame(&payload, flags)? } else { &payload[..] };
            let (_, _, block) =
                self.block.get_or_insert_with(|| (stream, flags & END_STREAM != 0, Vec::new()));
            if block.len() + fragment.len() > MAX_BLOCK {
                return Err(protocol("a header block over 256 KiB"));
            }
            block.extend_from_slice(fragment);
            if flags & END_HEADERS != 0
                && let Some((stream, end_stream, block)) = self.block.take()
            {
                self.reencode(stream, end_stream, &block)?;
            }
        }
    }

    fn reencode(&mut self, stream: u32, end_stream: bool, block: &[u8]) -> io::Result<()> {
        let mut encoded = Vec::with_capacity(block.len() + 64);
        self.decoder
            .decode_with_cb(block, |name, value| {
                let value: &[u8] = if &*name == b":authority" && !valid_authority(&value) {
                    LOCAL_AUTHORITY
                } else {
                    &value
                };
                literal(&mut encoded, &name, value);
            })
            .map_err(|e| protocol(&format!("undecodable header block: {e:?}")))?;
        let chunks: Vec<&[u8]> =
            if encoded.is_empty() { vec![&[]] } else { encoded.chunks(MAX_FRAME).collect() };
        let last = chunks.len() - 1;
        for (i, chunk) in chunks.into_iter().enumerate() {
            let kind = if i == 0 { HEADERS } else { CONTINUATION };
            let mut flags = if i == last { END_HEADERS } else { 0 };
            if i == 0 && end_stream {
                flags |= END_STREAM;
            }
            let length = u32::try_from(chunk.len()).unwrap_or(0).to_be_bytes();
            self.ready.extend_from_slice(&length[1..]);
            self.ready.put_u8(kind);
            self.ready.put_u8(flags);
            self.ready.put_u32(stream);
            self.ready.extend_from_slice(chunk);
        }
        Ok(())
    }
}

/// The header block fragment of a HEADERS frame, without padding and priority.
fn strip_headers_frame(payload: &[u8], flags: u8) -> io::Result<&[u8]> {
    let mut start = 0;
    let mut end = payload.len();
    if flags & PADDED != 0 {
        let pad = usize::from(*payload.first().ok_or_else(|| protocol("an empty padded frame"))?);
        start = 1;
        end = end.checked_sub(pad).ok_or_else(|| protocol("padding longer than the frame"))?;
    }
    if flags & PRIORITY != 0 {
        start += 5;
    }
    payload.get(start..end).ok_or_else(|| protocol("a HEADERS frame shorter than its fields"))
}

/// Whether the HTTP library accepts `value` as an authority.
fn valid_authority(value: &[u8]) -> bool {
    http::uri::Authority::try_from(value).is_ok()
}

/// HPACK "literal header field without indexing, new name", no Huffman coding.
fn literal(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.push(0);
    for text in [name, value] {
        integer(out, text.len(), 7, 0);
        out.extend_from_slice(text);
    }
}

/// HPACK integer with an N-bit prefix (RFC 7541, 5.1).
fn integer(out: &mut Vec<u8>, value: usize, prefix_bits: u8, high_bits: u8) {
    let max = (1usize << prefix_bits) - 1;
    if value < max {
        out.push(high_bits | u8::try_from(value).unwrap_or(0));
        return;
    }
    out.push(high_bits | u8::try_from(max).unwrap_or(0));
    let mut rest = value - max;
    while rest >= 128 {
        out.push(u8::try_from(rest % 128).unwrap_or(0) | 0x80);
        rest /= 128;
    }
    out.push(u8::try_from(rest).unwrap_or(0));
}

fn protocol(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("HTTP/2 from the client: {what}"))
}

impl<IO: AsyncRead + Unpin> AsyncRead for AuthorityFix<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if !this.ready.is_empty() {
                let n = this.ready.len().min(buf.remaining());
                buf.put_slice(&this.ready.split_to(n));
                return Poll::Ready(Ok(()));
            }
            if this.eof {
                return Poll::Ready(Ok(()));
            }
            this.raw.reserve(16 << 10);
            let mut chunk = [0u8; 16 << 10];
            let mut read = ReadBuf::new(&mut chunk);
            ready!(Pin::new(&mut this.io).poll_read(cx, &mut read))?;
            if read.filled().is_empty() {
                this.eof = true;
                continue;
            }
            this.raw.extend_from_slice(read.filled());
            this.process()?;
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for AuthorityFix<IO> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs client bytes through the shim and returns what the server would read.
    fn through(client: &[u8]) -> io::Result<Vec<u8>> {
        let mut shim = AuthorityFix::new(());
        shim.raw.extend_from_slice(client);
        shim.process()?;
        Ok(shim.ready.to_vec())
    }

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = u32::try_from(payload.len()).expect("small").to_be_bytes()[1..].to_vec();
        out.extend_from_slice(&[kind, flags]);
        out.extend_from_slice(&stream.to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    fn headers_of(server_bytes: &[u8]) -> Vec<(String, String)> {
        let mut decoder = loona_hpack::Decoder::new();
        let head = &server_bytes[PREFACE_BYTES..];
        let length = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
        let block = &head[FRAME_HEADER..FRAME_HEADER + length];
        let mut out = Vec::new();
        decoder
            .decode_with_cb(block, |n, v| {
                out.push((
                    String::from_utf8_lossy(&n).into_owned(),
                    String::from_utf8_lossy(&v).into_owned(),
                ));
            })
            .expect("the re-encoded block decodes");
        out
    }

    #[test]
    fn a_socket_path_authority_becomes_localhost_and_the_rest_passes() {
        let mut encoder = loona_hpack::Encoder::new();
        let block = encoder.encode([
            (&b":method"[..], &b"POST"[..]),
            (b":authority", b"%2Frun%2Fmodelwatch%2Fmodelwatch.sock"),
            (b":path", b"/modelwatch.v1.Sensor/GetStatus"),
        ]);
        let mut client = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        client.extend(frame(HEADERS, END_HEADERS, 1, &block));
        client.extend(frame(0x0, END_STREAM, 1, b"\0\0\0\0\0"));
        let server = through(&client).expect("valid");
        assert_eq!(&server[..PREFACE_BYTES], &client[..PREFACE_BYTES]);
        let headers = headers_of(&server);
        assert!(headers.contains(&(":authority".into(), "localhost".into())), "{headers:?}");
        assert!(headers.contains(&(":path".into(), "/modelwatch.v1.Sensor/GetStatus".into())));
        assert!(server.ends_with(&frame(0x0, END_STREAM, 1, b"\0\0\0\0\0")), "DATA passes unchanged");
    }

    #[test]
    fn split_blocks_padding_and_a_valid_authority() {
        let mut encoder = loona_hpack::Encoder::new();
        let block = encoder.encode([(&b":authority"[..], &b"localhost:50051"[..]), (b":path", b"/x")]);
        let (first, second) = block.split_at(3);
        let mut padded = vec![2u8];
        padded.extend_from_slice(first);
        padded.extend_from_slice(&[0, 0]);
        let mut client = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        client.extend(frame(HEADERS, PADDED | END_STREAM, 3, &padded));
        client.extend(frame(CONTINUATION, END_HEADERS, 3, second));
        let server = through(&client).expect("valid");
        assert_eq!(server[PREFACE_BYTES + 4], END_HEADERS | END_STREAM);
        let headers = headers_of(&server);
        assert_eq!(headers[0], (":authority".into(), "localhost:50051".into()));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..2000 {
            let mut client = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
            let len = usize::try_from(seed % 64).expect("small");
            let mut payload = Vec::new();
            for _ in 0..len {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                payload.push(u8::try_from(seed & 0xff).expect("byte"));
            }
            let flags = u8::try_from(seed % 64).expect("byte");
            client.extend(frame(HEADERS, flags | END_HEADERS, 1, &payload));
            let _ = through(&client);
        }
    }
}

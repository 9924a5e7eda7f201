use super::*;

fn input(bytes: &[u8]) -> Input<Streamed<&[u8]>> {
    Input::new(Streamed(bytes), bytes.len() as u64, u64::MAX, None, false)
}

#[test]
fn plain_reads_are_linear() {
    let mut i = input(b"ab\ncd\x01\x02");
    assert_eq!(i.opcode().expect("op"), Some(b'a'));
    assert_eq!(i.line(16).expect("line"), Some(b"b".to_vec()));
    assert_eq!(i.fixed(2).expect("fixed"), u64::from(u16::from_le_bytes(*b"cd")));
    assert!(matches!(i.line(16), Err(Halt::Truncated)), "a line without newline is truncated");
    assert!(i.anomaly().is_none());
}

#[test]
fn an_argument_past_its_frame_drops_the_rest_of_the_frame() {
    // A 3-byte frame "abc", then "defg": a 2-byte read at "c" drops "c" and reads "de".
    let mut i = input(b"abcdefg");
    i.frame(3).expect("frame");
    assert_eq!(i.opcode().expect("op"), Some(b'a'));
    assert_eq!(i.opcode().expect("op"), Some(b'b'));
    assert_eq!(i.fixed(2).expect("fixed"), u64::from(u16::from_le_bytes(*b"de")));
    assert!(i.anomaly().is_some());
    assert_eq!(i.offset(), 5);
}

#[test]
fn stop_inside_a_frame_moves_the_next_stream_to_its_end() {
    let mut i = input(b"N.xyzN.");
    i.frame(5).expect("frame");
    assert_eq!(i.opcode().expect("op"), Some(b'N'));
    assert_eq!(i.opcode().expect("op"), Some(b'.'));
    assert_eq!(i.next_stream_offset(), 5);
    assert!(i.anomaly().is_some());
}

#[test]
fn a_frame_longer_than_the_stream_fails_at_once() {
    let mut i = input(b"abc");
    assert!(matches!(i.frame(4), Ok(FrameFit::Short)));
}

#[test]
fn a_line_past_its_frame_is_read_after_the_frame() {
    let mut i = input(b"ab\x01cd\nef\n");
    i.frame(2).expect("frame");
    assert_eq!(i.line(64).expect("line"), Some(b"\x01cd".to_vec()));
    assert!(i.anomaly().is_some());
}

#[test]
fn byte_payloads_continue_past_the_frame() {
    let mut i = input(b"abcdef");
    i.frame(2).expect("frame");
    let Payload::Kept(bytes) = i.payload(4, 64, ReadMode::Continuing).expect("payload") else {
        panic!("kept");
    };
    assert_eq!(&*bytes, b"abcd");
}

#[test]
fn consistent_frames_are_no_anomaly() {
    let mut i = input(b"\x00\x01N.");
    i.frame(4).expect("frame");
    assert_eq!(i.fixed(2).expect("fixed"), 0x0100);
    assert_eq!(i.opcode().expect("op"), Some(b'N'));
    assert_eq!(i.opcode().expect("op"), Some(b'.'));
    assert_eq!(i.next_stream_offset(), 4);
    assert!(i.anomaly().is_none());
}

#[test]
fn linear_mode_ignores_frame_boundaries() {
    let mut i = Input::new(Streamed(&b"abcdefg"[..]), 7, u64::MAX, None, true);
    i.frame(3).expect("frame");
    assert_eq!(i.opcode().expect("op"), Some(b'a'));
    assert_eq!(i.opcode().expect("op"), Some(b'b'));
    assert_eq!(i.fixed(2).expect("fixed"), u64::from(u16::from_le_bytes(*b"cd")));
    assert!(i.anomaly().is_none());
    assert!(matches!(i.frame(10), Ok(FrameFit::Short)));
}

#[test]
fn the_byte_cap_counts_reads() {
    let mut i = Input::new(Streamed(&b"abcdef"[..]), 6, 3, None, false);
    assert!(i.fixed(3).is_ok());
    assert!(matches!(i.opcode(), Err(Halt::ByteLimit)));
}

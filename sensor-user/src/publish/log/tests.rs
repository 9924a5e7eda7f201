use std::time::SystemTime;

use proto::v1::ProcessExit;

use super::*;

fn exit(code: i32) -> Payload {
    Payload::ProcessExit(ProcessExit { exit_code: code, signal: 0 })
}

fn settings(dir: &Path, segment_bytes: u64, max_bytes: u64, memory_events: usize) -> LogSettings {
    LogSettings {
        store: StoreLimits { dir: dir.to_path_buf(), segment_bytes, max_bytes },
        memory_events,
        sync_interval: Duration::from_millis(50),
    }
}

fn publish_n(log: &EventLog, n: i32) {
    for code in 0..n {
        log.publish(SystemTime::now(), None, exit(code));
    }
}

/// Reads until `last_seq` is reached: (sequence numbers, gaps).
async fn read_to(cursor: &mut Cursor, last_seq: u64) -> (Vec<u64>, Vec<Gap>) {
    let (mut seqs, mut gaps, mut items) = (Vec::new(), Vec::new(), Vec::new());
    while cursor.next_seq() <= last_seq {
        let more = tokio::time::timeout(Duration::from_secs(10), cursor.next_batch(100, &mut items))
            .await
            .expect("the cursor advances");
        assert!(more, "the log closed early");
        for item in items.drain(..) {
            match item {
                Item::Event(record) => {
                    let event = record.decode().expect("decodes");
                    assert_eq!(event.seq, record.seq);
                    seqs.push(record.seq);
                }
                Item::Gap(gap) => gaps.push(gap),
            }
        }
    }
    (seqs, gaps)
}

#[tokio::test]
async fn replay_then_live_without_gap_or_duplicate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = EventLog::open("node".into(), &settings(dir.path(), 1 << 20, 1 << 30, 4)).expect("open");
    publish_n(&log, 10);
    let mut cursor = log.cursor(2, OutletKind::Grpc);
    let (first, _) = read_to(&mut cursor, 5).await;
    publish_n(&log, 10);
    let (rest, gaps) = read_to(&mut cursor, 20).await;
    let all: Vec<u64> = first.into_iter().chain(rest).collect();
    assert_eq!(all, (2..=20).collect::<Vec<_>>(), "memory window of 4: most came from the file");
    assert!(gaps.is_empty());
    assert_eq!(log.published(), 20);
}

#[tokio::test]
async fn sequence_numbers_and_events_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first_instance = {
        let log = EventLog::open("node".into(), &settings(dir.path(), 1 << 20, 1 << 30, 16)).expect("open");
        publish_n(&log, 7);
        log.close();
        log.instance().to_owned()
    };
    let log = EventLog::open("node".into(), &settings(dir.path(), 1 << 20, 1 << 30, 16)).expect("reopen");
    assert_eq!(log.first_seq(), 8);
    assert_eq!(log.previous().map(|p| (p.instance.as_str(), p.last_seq)), Some((first_instance.as_str(), 7)));
    let seq = log.publish(SystemTime::now(), None, exit(0));
    assert_eq!(seq, 8);
    let mut cursor = log.cursor(1, OutletKind::Grpc);
    let mut instances = Vec::new();
    let mut items = Vec::new();
    while cursor.next_seq() <= 8 {
        cursor.next_batch(100, &mut items).await;
        for item in items.drain(..) {
            if let Item::Event(record) = item {
                instances.push((record.seq, record.decode().expect("decodes").instance));
            }
        }
    }
    assert_eq!(instances.len(), 8);
    assert!(instances[..7].iter().all(|(_, i)| *i == first_instance));
    assert_eq!(instances[7].1, log.instance(), "the new instance tells where the restart was");
}

#[tokio::test]
async fn a_torn_tail_is_cut_and_the_sequence_goes_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let log = EventLog::open("node".into(), &settings(dir.path(), 1 << 20, 1 << 30, 16)).expect("open");
        publish_n(&log, 5);
        log.close();
    }
    let segment = segment::list(dir.path()).expect("list").pop().expect("a segment");
    let mut torn = Vec::new();
    frame::encode(&mut torn, 6, Meta::default(), b"a frame that was never finished");
    torn.truncate(torn.len() - 7);
    let mut file = std::fs::OpenOptions::new().append(true).open(&segment.path).expect("open segment");
    std::io::Write::write_all(&mut file, &torn).expect("append");
    let length = std::fs::metadata(&segment.path).expect("meta").len();
    let log = EventLog::open("node".into(), &settings(dir.path(), 1 << 20, 1 << 30, 16)).expect("reopen");
    assert_eq!(log.first_seq(), 6, "the torn frame is not counted");
    assert_eq!(std::fs::metadata(&segment.path).expect("meta").len(), length - torn.len() as u64);
    assert!(log.recovery_note().is_some_and(|n| n.contains("torn")));
    assert_eq!(log.publish(SystemTime::now(), None, exit(0)), 6);
    let (seqs, gaps) = read_to(&mut log.cursor(1, OutletKind::Grpc), 6).await;
    assert_eq!(seqs, (1..=6).collect::<Vec<_>>());
    assert!(gaps.is_empty());
}

#[tokio::test]
async fn flipped_bytes_mid_segment_become_a_gap_and_reading_goes_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = EventLog::open("node".into(), &settings(dir.path(), 1 << 20, 1 << 30, 4)).expect("open");
    publish_n(&log, 100);
    // Wait until written, then damage the middle of the (only) segment.
    let _ = read_to(&mut log.cursor(100, OutletKind::Grpc), 100).await;
    let segment = segment::list(dir.path()).expect("list").pop().expect("a segment");
    let mut bytes = std::fs::read(&segment.path).expect("read");
    let middle = bytes.len() / 2;
    for byte in &mut bytes[middle..middle + 8] {
        *byte ^= 0xff;
    }
    std::fs::write(&segment.path, &bytes).expect("write back");
    let (seqs, gaps) = read_to(&mut log.cursor(1, OutletKind::Grpc), 100).await;
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    let gap = gaps[0];
    assert_eq!(gap.reason, GapReason::Damaged);
    assert!(gap.count() <= 2, "8 bytes damage at most two frames: {gap:?}");
    assert_eq!(seqs.len() as u64 + gap.count(), 100, "everything else is read");
    assert_eq!(log.extent().damaged, 1);
    // The log keeps taking events.
    log.publish(SystemTime::now(), None, exit(0));
    let (after, _) = read_to(&mut log.cursor(101, OutletKind::Grpc), 101).await;
    assert_eq!(after, vec![101]);
}

#[tokio::test]
async fn old_segments_go_past_the_cap_and_readers_are_told() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = EventLog::open("node".into(), &settings(dir.path(), 4096, 3 * 4096, 8)).expect("open");
    publish_n(&log, 2000);
    let _ = read_to(&mut log.cursor(2000, OutletKind::Grpc), 2000).await;
    let extent = log.extent();
    assert!(extent.first_seq > 1 && extent.bytes <= 4 * 4096, "{extent:?}");
    let (seqs, gaps) = read_to(&mut log.cursor(1, OutletKind::Grpc), 2000).await;
    assert_eq!(
        gaps,
        vec![Gap { first_seq: 1, last_seq: extent.first_seq - 1, reason: GapReason::Retention }]
    );
    assert_eq!(seqs, (extent.first_seq..=2000).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_reader_that_never_reads_costs_the_others_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log =
        Arc::new(EventLog::open("node".into(), &settings(dir.path(), 1 << 20, 1 << 30, 64)).expect("open"));
    let _stalled = log.cursor(1, OutletKind::Grpc);
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let mut cursor = log.cursor(1, OutletKind::Grpc);
            tokio::spawn(async move { read_to(&mut cursor, 20_000).await })
        })
        .collect();
    publish_n(&log, 20_000);
    for reader in readers {
        let (seqs, gaps) = reader.await.expect("reader");
        assert_eq!(seqs.len(), 20_000);
        assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1));
        assert!(gaps.is_empty());
    }
    assert_eq!(log.subscribers(), 1, "the finished readers are gone, the stalled one stays");
}

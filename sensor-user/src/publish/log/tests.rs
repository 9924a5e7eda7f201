use super::*;
use proto::v1::ProcessExit;

fn exit(code: i32) -> Payload {
    Payload::ProcessExit(ProcessExit { exit_code: code, signal: 0 })
}

fn lost_range(event: &Event) -> Option<(i32, u64, u64)> {
    match &event.payload {
        Some(Payload::EventsLost(lost)) => Some((lost.source, lost.first_seq, lost.last_seq)),
        _ => None,
    }
}

#[tokio::test]
async fn sequence_numbers_are_dense_and_live_follows_replay() {
    let log = EventLog::new("node".into(), 10, 16);
    for code in 0..3 {
        log.publish(SystemTime::now(), None, exit(code));
    }
    let mut sub = log.subscribe(2);
    log.publish(SystemTime::now(), None, exit(3));
    let mut seqs = Vec::new();
    for _ in 0..3 {
        seqs.push(sub.next().await.expect("event").seq);
    }
    assert_eq!(seqs, vec![2, 3, 4]);
    assert_eq!(log.published(), 4);
}

#[tokio::test]
async fn replay_beyond_retention_is_announced() {
    let log = EventLog::new("node".into(), 2, 16);
    for code in 0..5 {
        log.publish(SystemTime::now(), None, exit(code));
    }
    let mut sub = log.subscribe(1);
    let notice = sub.next().await.expect("notice");
    assert_eq!(lost_range(&notice), Some((LossSource::Retention as i32, 1, 3)));
    assert_eq!(sub.next().await.expect("event").seq, 4);
}

#[tokio::test]
async fn a_slow_subscriber_is_told_what_it_missed() {
    let log = EventLog::new("node".into(), 100, 16);
    let mut sub = log.subscribe(0);
    log.publish(SystemTime::now(), None, exit(0));
    assert_eq!(sub.next().await.expect("first").seq, 1);
    for code in 0..40 {
        log.publish(SystemTime::now(), None, exit(code));
    }
    let notice = sub.next().await.expect("notice");
    let (source, first, last) = lost_range(&notice).expect("an EventsLost notice");
    assert_eq!(source, LossSource::SubscriberLagged as i32);
    assert_eq!(first, 2);
    let next = sub.next().await.expect("event after the gap");
    assert_eq!(next.seq, last + 1, "the gap ends right before the next event");
    assert_eq!(next.seq, 41 - 16 + 1, "the channel kept its newest 16 events");
}

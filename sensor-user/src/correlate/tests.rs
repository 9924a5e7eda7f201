//! The pipeline without root: synthetic kernel records, real files in a temp
//! directory, the real analysis (made slow on purpose where a test needs it), and a
//! sink that records what was published and when.

use std::{
    os::fd::AsRawFd as _,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use proto::v1::{AnalysisState, Event, event::Payload};
use sensor_common::{
    ABI_VERSION, EventHeader, EventKind, FileEvent, FileIdentity, ListenEvent, MmapFields, PathHeader,
    decode::{RawPath, Record},
    reason,
    settings::mark,
};
use tokio::sync::mpsc;

use super::{
    EventSink, Parts, Pipeline, PipelineOptions, PipelineStats,
    workers::{PoolSizes, WorkFns, Workers},
};
use crate::{
    domain::{Drop, DropCounters, event_kind::kind},
    enrich::process::{ProcView, ProcessInfo},
};

/// Collects events with the time they were published.
#[derive(Default)]
struct Collected {
    events: Mutex<Vec<(Instant, Event)>>,
}

impl EventSink for Collected {
    fn publish(
        &self,
        _time: std::time::SystemTime,
        process: Option<proto::v1::Process>,
        session_id: String,
        payload: Payload,
    ) -> u64 {
        let mut events = self.events.lock().expect("lock");
        let seq = events.len() as u64 + 1;
        events.push((
            Instant::now(),
            Event { seq, process, session_id, payload: Some(payload), ..Event::default() },
        ));
        seq
    }
}

impl Collected {
    fn kinds(&self) -> Vec<String> {
        self.events.lock().expect("lock").iter().map(|(_, e)| kind(e).to_owned()).collect()
    }

    fn find(&self, wanted: &str) -> Option<(Instant, Event)> {
        self.events.lock().expect("lock").iter().find(|(_, e)| kind(e) == wanted).cloned()
    }

    async fn wait_for(&self, wanted: &str, within: Duration) -> Option<(Instant, Event)> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(found) = self.find(wanted) {
                return Some(found);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        None
    }
}

/// No /proc: processes are what the records say.
struct NoProc;

impl ProcView for NoProc {
    fn process(&self, _pid: u32) -> Option<ProcessInfo> {
        None
    }
}

struct Harness {
    records: mpsc::Sender<Record>,
    sink: Arc<Collected>,
    drops: Arc<DropCounters>,
    _snapshot: mpsc::Sender<crate::enrich::snapshot::SnapshotItem>,
    _policy: mpsc::Sender<crate::policy::PolicyUpdate>,
    _inventory: mpsc::Sender<super::inventory::InventoryRequest>,
    _sweep: mpsc::Sender<crate::analyze::sweep::SweepItem>,
    _accelerators: mpsc::Sender<super::accelerators::AcceleratorSample>,
}

fn start(fns: WorkFns, sizes: PoolSizes, options: PipelineOptions) -> Harness {
    start_with_policy(fns, sizes, options, crate::policy::Policy::defaults())
}

fn start_with_policy(
    fns: WorkFns,
    sizes: PoolSizes,
    options: PipelineOptions,
    policy: crate::policy::Policy,
) -> Harness {
    let sink = Arc::new(Collected::default());
    let drops = Arc::new(DropCounters::default());
    let (workers, results) = Workers::spawn(fns, sizes);
    let parts = Parts {
        view: Box::new(NoProc),
        marks: None,
        accelerator_maps: None,
        sink: Arc::clone(&sink) as Arc<dyn EventSink>,
        workers,
        drops: Arc::clone(&drops),
        stats: Arc::new(PipelineStats::default()),
        policy: Arc::new(policy),
    };
    let (records_tx, records) = mpsc::channel(1024);
    let (snapshot_tx, snapshot) = mpsc::channel(16);
    let (policy_tx, policy) = mpsc::channel(4);
    let (inventory_tx, inventory) = mpsc::channel(4);
    let (sweep_tx, sweep) = mpsc::channel(4);
    let (accelerators_tx, accelerators) = mpsc::channel(4);
    let inputs = super::Inputs { records, results, snapshot, policy, inventory, sweep, accelerators };
    tokio::spawn(Pipeline::new(options, parts).run(inputs));
    Harness {
        records: records_tx,
        sink,
        drops,
        _snapshot: snapshot_tx,
        _policy: policy_tx,
        _inventory: inventory_tx,
        _sweep: sweep_tx,
        _accelerators: accelerators_tx,
    }
}

fn real_fns() -> WorkFns {
    WorkFns::real(
        model_analysis::Limits::default(),
        model_analysis::HashBudget::default(),
        PathBuf::from("/proc"),
    )
}

/// The real work, with deep analysis held up for `delay`.
fn slow_analysis(delay: Duration) -> WorkFns {
    let mut fns = real_fns();
    let real = Arc::clone(&fns.analyze);
    fns.analyze = Arc::new(move |job| {
        std::thread::sleep(delay);
        real(job)
    });
    fns
}

fn header(kind: EventKind, tgid: u32) -> EventHeader {
    EventHeader {
        kind: kind as u16,
        abi_version: ABI_VERSION,
        tgid,
        tid: tgid,
        comm: *b"test-process\0\0\0\0",
        ..EventHeader::default()
    }
}

/// The kernel's identity of an open file.
fn identity_of(file: &std::fs::File) -> FileIdentity {
    let stamp = model_analysis::FileStamp::of(file).expect("fstat");
    let (major, minor) = (libc::major(stamp.dev), libc::minor(stamp.dev));
    FileIdentity {
        dev: (major << 20) | minor,
        mode: 0o100_644,
        ino: stamp.ino,
        size: stamp.size,
        mtime_sec: stamp.mtime_ns.div_euclid(1_000_000_000),
        mtime_nsec: u32::try_from(stamp.mtime_ns.rem_euclid(1_000_000_000)).expect("nsec"),
        rdev: 0,
        ctime_sec: stamp.ctime_ns.div_euclid(1_000_000_000),
        ctime_nsec: u32::try_from(stamp.ctime_ns.rem_euclid(1_000_000_000)).expect("nsec"),
        _pad: 0,
    }
}

/// A kernel record of this test process opening `file` (held open as `fd`).
fn open_record(file: &std::fs::File, path: &Path, why: u32) -> Record {
    let components: Vec<u8> = path
        .iter()
        .rev()
        .filter(|c| *c != "/")
        .flat_map(|c| c.as_encoded_bytes().iter().copied().chain([0]))
        .collect();
    Record::File {
        kind: EventKind::FileOpen,
        event: FileEvent {
            header: header(EventKind::FileOpen, std::process::id()),
            file: identity_of(file),
            mmap: MmapFields::default(),
            fd: file.as_raw_fd(),
            reason: why,
            open_flags: 0,
            repeats: 0,
            mnt_ns: 0,
            _pad: 0,
            path: PathHeader::default(),
        },
        path: RawPath { bytes: components, flags: 0 },
    }
}

fn listen_record(pid: u32, port: u16, why: u32, marks: u32) -> Record {
    Record::Listen(ListenEvent {
        header: header(EventKind::Listen, pid),
        port,
        family: 2,
        protocol: 6,
        _pad: 0,
        reason: why,
        addr: [127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        marks,
    })
}

fn gguf(dir: &Path, name: &str) -> (PathBuf, std::fs::File) {
    let path = dir.join(name);
    let mut bytes = b"GGUF".to_vec();
    bytes.extend_from_slice(&3u32.to_le_bytes());
    bytes.extend_from_slice(&0u64.to_le_bytes());
    bytes.extend_from_slice(&0u64.to_le_bytes());
    std::fs::write(&path, bytes).expect("write");
    let file = std::fs::File::open(&path).expect("open");
    (path, file)
}

fn options() -> PipelineOptions {
    PipelineOptions { identify_deadline: Duration::from_millis(300), ..PipelineOptions::default() }
}

#[tokio::test]
async fn a_slow_analysis_does_not_delay_a_listener_queued_behind_it() {
    let h = start(slow_analysis(Duration::from_secs(2)), PoolSizes::default(), options());
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, file) = gguf(dir.path(), "slow.gguf");
    let sent = Instant::now();
    h.records.send(open_record(&file, &path, reason::EXTENSION)).await.expect("send");
    h.records.send(listen_record(4242, 11434, reason::WATCHED_PORT, 0)).await.expect("send");
    let (at, _) = h.sink.wait_for("listener_opened", Duration::from_secs(1)).await.expect("listener");
    assert!(at - sent < Duration::from_millis(500), "listener took {:?}", at - sent);
    let (opened_at, opened) =
        h.sink.wait_for("model_file_opened", Duration::from_secs(1)).await.expect("opened");
    assert!(opened_at - sent < Duration::from_millis(500), "the model event waited for deep analysis");
    let Some(Payload::ModelFileOpened(open)) = opened.payload else { panic!("payload") };
    let file_info = open.file.expect("file");
    assert_eq!(file_info.format, proto::v1::ModelFormat::Gguf as i32);
    assert_eq!(file_info.analysis, AnalysisState::Pending as i32);
    assert!(h.sink.find("model_analyzed").is_none(), "analysis is still running");
    let (analyzed_at, _) = h.sink.wait_for("model_analyzed", Duration::from_secs(5)).await.expect("analyzed");
    assert!(analyzed_at - sent >= Duration::from_secs(2));
}

#[tokio::test]
async fn events_of_one_file_come_in_order_and_link_to_the_first() {
    let h = start(real_fns(), PoolSizes::default(), options());
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, file) = gguf(dir.path(), "ordered.gguf");
    for _ in 0..3 {
        h.records.send(open_record(&file, &path, reason::EXTENSION)).await.expect("send");
    }
    h.sink.wait_for("model_hashed", Duration::from_secs(5)).await.expect("hashed");
    // Sessions and verdict findings interleave; the file's own events keep their order.
    let file_kinds = ["model_file_opened", "model_analyzed", "model_hashed"];
    let events: Vec<_> = h
        .sink
        .events
        .lock()
        .expect("lock")
        .iter()
        .filter(|(_, event)| file_kinds.contains(&kind(event)))
        .cloned()
        .collect();
    let kinds: Vec<_> = events.iter().map(|(_, event)| kind(event)).collect();
    assert_eq!(
        kinds,
        ["model_file_opened", "model_file_opened", "model_file_opened", "model_analyzed", "model_hashed"],
        "{kinds:?}"
    );
    let Some(Payload::ModelAnalyzed(analyzed)) = &events[3].1.payload else { panic!("analyzed") };
    assert_eq!(analyzed.announced_seq, events[0].1.seq);
    let Some(Payload::ModelHashed(hashed)) = &events[4].1.payload else { panic!("hashed") };
    assert_eq!(hashed.announced_seq, events[0].1.seq);
    assert_eq!(hashed.sha256.len(), 64);
}

#[tokio::test]
async fn a_stuck_identification_times_out_and_is_published_unidentified() {
    let mut fns = real_fns();
    fns.identify = Arc::new(|request| {
        std::thread::sleep(Duration::from_secs(2));
        crate::analyze::work::identify(request, &crate::analyze::work::identify_limits())
    });
    let h = start(fns, PoolSizes::default(), options());
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, file) = gguf(dir.path(), "fuse-like.gguf");
    h.records.send(open_record(&file, &path, reason::EXTENSION)).await.expect("send");
    let (_, opened) = h.sink.wait_for("model_file_opened", Duration::from_secs(1)).await.expect("published");
    let Some(Payload::ModelFileOpened(open)) = opened.payload else { panic!("payload") };
    assert_eq!(open.file.expect("file").analysis, AnalysisState::TimedOut as i32);
    assert_eq!(h.drops.get(Drop::IdentifyTimeout), 1);
    // The identification finishes late: the deep analysis still follows.
    h.sink.wait_for("model_analyzed", Duration::from_secs(5)).await.expect("late analysis");
}

#[tokio::test]
async fn every_drop_path_counts() {
    let mut fns = real_fns();
    let real_identify = Arc::clone(&fns.identify);
    fns.identify = Arc::new(move |request| {
        std::thread::sleep(Duration::from_millis(200));
        real_identify(request)
    });
    let sizes = PoolSizes { identify_workers: 1, identify_queue: 1, ..PoolSizes::default() };
    let h = start(fns, sizes, options());
    let dir = tempfile::tempdir().expect("tempdir");
    // Not a model.
    let text_path = dir.path().join("notes.bin");
    std::fs::write(&text_path, b"plain text, not a model").expect("write");
    let text = std::fs::File::open(&text_path).expect("open");
    h.records.send(open_record(&text, &text_path, reason::EXTENSION)).await.expect("send");
    // Two more distinct files: one waits in the queue, the next finds it full.
    let (p1, f1) = gguf(dir.path(), "one.gguf");
    let (p2, f2) = gguf(dir.path(), "two.gguf");
    h.records.send(open_record(&f1, &p1, reason::EXTENSION)).await.expect("send");
    h.records.send(open_record(&f2, &p2, reason::EXTENSION)).await.expect("send");
    // A file that vanishes: closed and deleted before anyone could read it.
    let (gone_path, gone) = gguf(dir.path(), "gone.gguf");
    let mut gone_record = open_record(&gone, &gone_path, reason::EXTENSION);
    // Its descriptor is closed: a number no descriptor of this process uses.
    if let Record::File { event, .. } = &mut gone_record {
        event.fd = 40_000;
    }
    drop(gone);
    std::fs::remove_file(&gone_path).expect("unlink");
    tokio::time::sleep(Duration::from_millis(800)).await;
    h.records.send(gone_record).await.expect("send");
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(h.drops.get(Drop::NotAModel), 1, "{:?}", h.drops.snapshot());
    assert!(h.drops.get(Drop::IdentifyQueueFull) >= 1, "{:?}", h.drops.snapshot());
    assert_eq!(h.drops.get(Drop::CandidateVanished), 1, "{:?}", h.drops.snapshot());
}

#[tokio::test]
async fn a_listener_on_a_provisional_mark_waits_for_the_verdict() {
    let h = start(real_fns(), PoolSizes::default(), options());
    let dir = tempfile::tempdir().expect("tempdir");
    let me = std::process::id();
    // A model: the listener forwarded on the provisional mark is published.
    let (path, file) = gguf(dir.path(), "real.gguf");
    h.records.send(open_record(&file, &path, reason::EXTENSION)).await.expect("send");
    h.records.send(listen_record(me, 40_001, reason::MARKED_RUNTIME, mark::PROVISIONAL)).await.expect("send");
    let (_, listener) = h.sink.wait_for("listener_opened", Duration::from_secs(2)).await.expect("published");
    let Some(Payload::ListenerOpened(listen)) = listener.payload else { panic!("payload") };
    assert_eq!(listen.port, 40_001);

    // Not a model, from another process: its provisional listener is dropped, counted.
    let other = start(real_fns(), PoolSizes::default(), options());
    let fake = dir.path().join("fake.gguf");
    std::fs::write(&fake, b"not really a model").expect("write");
    let fake_file = std::fs::File::open(&fake).expect("open");
    other.records.send(open_record(&fake_file, &fake, reason::EXTENSION)).await.expect("send");
    other
        .records
        .send(listen_record(me, 40_002, reason::MARKED_RUNTIME, mark::PROVISIONAL))
        .await
        .expect("send");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(other.sink.find("listener_opened").is_none(), "{:?}", other.sink.kinds());
    assert_eq!(other.drops.get(Drop::ListenerNotRuntime), 1);
}

#[tokio::test]
async fn a_full_analysis_queue_is_said_in_the_event() {
    let sizes = PoolSizes { analyze_queue: 1, ..PoolSizes::default() };
    let h = start(slow_analysis(Duration::from_secs(1)), sizes, options());
    let dir = tempfile::tempdir().expect("tempdir");
    let mut held = Vec::new();
    for i in 0..4 {
        let (path, file) = gguf(dir.path(), &format!("m{i}.gguf"));
        h.records.send(open_record(&file, &path, reason::EXTENSION)).await.expect("send");
        held.push(file);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let events = h.sink.events.lock().expect("lock").clone();
    let skipped = events
        .iter()
        .filter(|(_, e)| {
            matches!(&e.payload, Some(Payload::ModelFileOpened(o))
                if o.file.as_ref().is_some_and(|f| f.analysis == AnalysisState::SkippedQueueFull as i32))
        })
        .count();
    assert!(skipped >= 1, "{events:?}");
    assert_eq!(h.drops.get(Drop::AnalysisQueueFull) as usize, skipped);
}

#[tokio::test]
async fn content_changed_after_the_load_is_a_finding_not_a_clean_verdict() {
    let h = start(real_fns(), PoolSizes::default(), options());
    let dir = tempfile::tempdir().expect("tempdir");
    let findings_of = |event: Event| {
        let Some(Payload::ModelAnalyzed(analyzed)) = event.payload else { panic!("payload") };
        analyzed.findings.into_iter().map(|f| f.kind).collect::<Vec<_>>()
    };
    // Unchanged since the kernel saw it: no such finding.
    let (path, file) = gguf(dir.path(), "same.gguf");
    h.records.send(open_record(&file, &path, reason::EXTENSION)).await.expect("send");
    let (_, analyzed) = h.sink.wait_for("model_analyzed", Duration::from_secs(5)).await.expect("analyzed");
    assert!(!findings_of(analyzed).contains(&"changed_since_opened".to_owned()));
    // Loaded, then rewritten before the sensor reads it: the record carries the
    // loaded version's identity, the file on disk is another.
    let (path, file) = gguf(dir.path(), "swapped.gguf");
    let record = open_record(&file, &path, reason::EXTENSION);
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, &[0; 64]))
        .expect("rewrite");
    h.records.send(record).await.expect("send");
    let swapped =
        |e: &Event| matches!(&e.payload, Some(Payload::ModelAnalyzed(a)) if a.path.ends_with("swapped.gguf"));
    let deadline = Instant::now() + Duration::from_secs(5);
    let analyzed = loop {
        let found = h.sink.events.lock().expect("lock").iter().map(|(_, e)| e).find(|e| swapped(e)).cloned();
        if let Some(event) = found {
            break event;
        }
        assert!(Instant::now() < deadline, "no model_analyzed for the swapped file");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert!(findings_of(analyzed).contains(&"changed_since_opened".to_owned()));
}

#[tokio::test]
async fn a_sensitive_open_before_the_model_is_identified_joins_the_session() {
    let dir = tempfile::tempdir().expect("tempdir");
    let secrets = dir.path().join("customer-data");
    std::fs::create_dir(&secrets).expect("mkdir");
    let export = secrets.join("export.csv");
    std::fs::write(&export, "name,card\n").expect("data");
    let text = format!("[policy]\nsensitive_paths = [\"{}\"]\n", secrets.display());
    let catalog = crate::policy::catalog::Catalog::parse(&text, None).expect("catalog");
    let policy = crate::policy::Policy { catalog, trust: crate::policy::Trust::default() };
    let h = start_with_policy(real_fns(), PoolSizes::default(), options(), policy);
    // The sensitive file's record comes first: no session yet (as when identifying the
    // model takes longer than the runtime's gap between the two opens).
    let export_file = std::fs::File::open(&export).expect("open");
    h.records.send(open_record(&export_file, &export, reason::MARKED_RUNTIME)).await.expect("send");
    let (path, file) = gguf(dir.path(), "m.gguf");
    h.records.send(open_record(&file, &path, reason::EXTENSION)).await.expect("send");
    let sensitive = |e: &Event| {
        matches!(&e.payload, Some(Payload::Finding(f))
            if f.verdict.as_ref().is_some_and(|v| v.rules.iter().any(|r| r.verdict == "sensitive_data_access" && r.reason.contains("export.csv"))))
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while !h.sink.events.lock().expect("lock").iter().any(|(_, e)| sensitive(e)) {
        assert!(Instant::now() < deadline, "no sensitive-data finding: {:?}", h.sink.kinds());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

//! Ships the event log to an OpenTelemetry Collector as OTLP logs over gRPC, the way a
//! fleet plugs modelwatch into the pipeline it already runs.
//!
//! At-least-once: the shipper is a reader of the durable log; a batch is retried with
//! exponential backoff until the collector accepts it, and only then is the position
//! (`otlp.position` in the state directory) moved. A collector outage costs nothing
//! while it is shorter than the log's retention; past it, the shipper sends the
//! `events_lost` notice for what is gone. Every record carries `modelwatch.seq` and
//! `modelwatch.instance`, so a receiver removes duplicates (after a retry, or a restart
//! of the sensor between a send and the position update) by them.

pub mod wire;

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use proto::v1::{Event, Severity};

use self::wire::{
    AnyValue, ExportLogsServiceRequest, ExportLogsServiceResponse, InstrumentationScope, KeyValue, LogRecord,
    Resource, ResourceLogs, ScopeLogs, Value,
};
use super::{
    EventLog,
    filter::severity_of,
    log::{Item, OutletKind, cursor::notice},
    settings::{OtlpConfig, OtlpStart},
};
use crate::domain::event_kind::{kind, kind_of};

const EXPORT: &str = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";
const BATCH: usize = 512;
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Ships the log to `config.endpoint` until the log closes.
pub async fn ship(log: Arc<EventLog>, config: OtlpConfig, state_dir: PathBuf) {
    let position_file = state_dir.join("otlp.position");
    let since = read_position(&position_file).unwrap_or(match config.start {
        OtlpStart::Latest => log.first_seq(),
        OtlpStart::Earliest => 1,
    });
    let channel = match tonic::transport::Endpoint::from_shared(config.endpoint.clone()) {
        Ok(endpoint) => endpoint.connect_timeout(Duration::from_secs(5)).timeout(CALL_TIMEOUT).connect_lazy(),
        Err(error) => {
            tracing::error!(endpoint = %config.endpoint, %error, "bad OTLP endpoint; not shipping");
            return;
        }
    };
    let mut client = tonic::client::Grpc::new(channel);
    let mut cursor = log.cursor(since, OutletKind::Otlp);
    let mut items = Vec::with_capacity(BATCH);
    let resource = resource(&log);
    while cursor.next_batch(BATCH, &mut items).await {
        let records: Vec<LogRecord> = items.drain(..).filter_map(|item| record(&item)).collect();
        let count = records.len() as u64;
        let request = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(resource.clone()),
                scope_logs: vec![ScopeLogs {
                    scope: Some(InstrumentationScope {
                        name: "modelwatch".into(),
                        version: env!("CARGO_PKG_VERSION").into(),
                    }),
                    log_records: records,
                }],
            }],
        };
        send_until_accepted(&mut client, request, cursor.state()).await;
        cursor.state().add_delivered(count);
        write_position(&position_file, cursor.next_seq());
    }
}

/// Sends one batch, retrying (with growing pauses) until the collector takes it.
async fn send_until_accepted(
    client: &mut tonic::client::Grpc<tonic::transport::Channel>,
    request: ExportLogsServiceRequest,
    state: &super::log::OutletState,
) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        match export(client, request.clone()).await {
            Ok(response) => {
                state.set_retrying(false);
                if let Some(partial) = response.partial_success.filter(|p| p.rejected_log_records > 0) {
                    tracing::warn!(
                        rejected = partial.rejected_log_records,
                        message = %partial.error_message,
                        "the OTLP collector rejected records"
                    );
                }
                return;
            }
            Err(status) => {
                if !state.state().eq("retrying") {
                    tracing::warn!(code = ?status.code(), message = %status.message(), "OTLP export failed; retrying from the log");
                }
                state.set_retrying(true);
                tokio::time::sleep(jitter(backoff)).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

async fn export(
    client: &mut tonic::client::Grpc<tonic::transport::Channel>,
    request: ExportLogsServiceRequest,
) -> Result<ExportLogsServiceResponse, tonic::Status> {
    client.ready().await.map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let codec = tonic_prost::ProstCodec::<ExportLogsServiceRequest, ExportLogsServiceResponse>::default();
    let path = http::uri::PathAndQuery::from_static(EXPORT);
    client.unary(tonic::Request::new(request), path, codec).await.map(tonic::Response::into_inner)
}

/// ±25 % so that a fleet does not retry in step.
fn jitter(pause: Duration) -> Duration {
    let mut byte = [0u8; 1];
    let _ = rustix::rand::getrandom(&mut byte, rustix::rand::GetRandomFlags::empty());
    pause.mul_f64(0.75 + f64::from(byte[0]) / 512.0)
}

fn resource(log: &EventLog) -> Resource {
    Resource {
        attributes: vec![
            KeyValue::string("service.name", "modelwatch"),
            KeyValue::string("service.version", env!("CARGO_PKG_VERSION")),
            KeyValue::string("host.name", log.node()),
        ],
    }
}

/// One log record: the event as proto3 JSON in the body, its identity in attributes.
fn record(item: &Item) -> Option<LogRecord> {
    let event = match item {
        Item::Event(record) => record.decode().ok()?,
        Item::Gap(gap) => notice(gap),
    };
    Some(log_record(&event))
}

/// An event as an OTLP log record.
#[must_use]
pub fn log_record(event: &Event) -> LogRecord {
    let time = event.time.as_ref().map_or(0, |t| {
        u64::try_from(t.seconds).unwrap_or(0) * 1_000_000_000 + u64::try_from(t.nanos).unwrap_or(0)
    });
    let severity = event.payload.as_ref().map_or(Severity::Info, severity_of);
    let (number, text) = match severity {
        Severity::Low => (13, "WARN"),
        Severity::Medium => (17, "ERROR"),
        Severity::High => (18, "ERROR2"),
        Severity::Critical => (21, "FATAL"),
        Severity::Info | Severity::Unspecified => (9, "INFO"),
    };
    let mut attributes = vec![
        KeyValue::int("modelwatch.seq", i64::try_from(event.seq).unwrap_or(i64::MAX)),
        KeyValue::string("modelwatch.instance", event.instance.clone()),
        KeyValue::string("modelwatch.kind", kind(event)),
    ];
    if let Some(process) = &event.process {
        attributes.push(KeyValue::int("process.pid", i64::from(process.pid)));
        if !process.exe.is_empty() {
            attributes.push(KeyValue::string("process.executable.path", process.exe.clone()));
        }
    }
    LogRecord {
        time_unix_nano: time,
        observed_time_unix_nano: time,
        severity_number: number,
        severity_text: text.into(),
        body: Some(AnyValue { value: Some(Value::StringValue(super::format::json_line(event))) }),
        attributes,
        event_name: format!(
            "modelwatch.{}",
            crate::domain::event_kind::kind_name(kind_of(event.payload.as_ref()))
        ),
    }
}

fn read_position(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Written to a temporary file and renamed: a crash leaves the old or the new value.
fn write_position(path: &Path, next_seq: u64) {
    let temporary = path.with_extension("position.tmp");
    if std::fs::write(&temporary, next_seq.to_string())
        .and_then(|()| std::fs::rename(&temporary, path))
        .is_err()
    {
        tracing::warn!(path = %path.display(), "cannot record the OTLP position; a restart may send events again");
    }
}

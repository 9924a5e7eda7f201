//! `modelwatch watch` and `modelwatch status`: clients of a running sensor.

use proto::v1::{EventFilter, GetStatusRequest, StreamEventsRequest};

use super::SocketArg;
use crate::publish::{grpc, stdout};

#[derive(Debug, clap::Args)]
pub struct WatchArgs {
    #[command(flatten)]
    socket: SocketArg,
    /// How events are printed.
    #[arg(long, short, value_enum, default_value_t = super::default_output())]
    output: stdout::Output,
    /// Replay retained events from this sequence number first (0: live only).
    #[arg(long, default_value_t = 0)]
    since: u64,
    /// Only these event kinds (repeatable), e.g. model_file_opened.
    #[arg(long = "kind")]
    kinds: Vec<String>,
    /// Only events at least this severe (their worst finding).
    #[arg(long, value_enum)]
    min_severity: Option<MinSeverity>,
    /// Only events about this process (repeatable).
    #[arg(long = "pid")]
    pids: Vec<u32>,
    /// Only events of this inference session.
    #[arg(long)]
    session: Option<String>,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum MinSeverity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl MinSeverity {
    fn proto(self) -> proto::v1::Severity {
        match self {
            Self::Info => proto::v1::Severity::Info,
            Self::Low => proto::v1::Severity::Low,
            Self::Medium => proto::v1::Severity::Medium,
            Self::High => proto::v1::Severity::High,
            Self::Critical => proto::v1::Severity::Critical,
        }
    }
}

impl WatchArgs {
    /// The request: kinds by name are checked here, so a typo is named at once.
    fn request(&self) -> Result<StreamEventsRequest, String> {
        let mut kinds = Vec::new();
        for name in &self.kinds {
            let kind = crate::domain::event_kind::kind_from_name(name).ok_or_else(|| {
                format!("unknown event kind {name:?} (e.g. model_file_opened, listener_opened)")
            })?;
            kinds.push(kind as i32);
        }
        let filter = EventFilter {
            kinds,
            min_severity: self.min_severity.map_or(0, |s| s.proto() as i32),
            pids: self.pids.clone(),
            session_id: self.session.clone().unwrap_or_default(),
        };
        Ok(StreamEventsRequest { since_seq: self.since, kinds: Vec::new(), filter: Some(filter) })
    }
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    socket: SocketArg,
    /// How the status is printed.
    #[arg(long, short, value_enum, default_value_t = super::default_output())]
    output: stdout::Output,
}

pub(super) async fn watch(args: WatchArgs) -> i32 {
    let request = match args.request() {
        Ok(request) => request,
        Err(message) => {
            super::report(&std::io::Error::other(message));
            return 2;
        }
    };
    let mut client = match grpc::connect(&args.socket.socket).await {
        Ok(client) => client,
        Err(error) => return unreachable_sensor(&args.socket.socket, &error),
    };
    let mut stream = match client.stream_events(request).await {
        Ok(response) => response.into_inner(),
        Err(status) => {
            super::report(&status);
            return 2;
        }
    };
    let mut last_seq = args.since.saturating_sub(1);
    loop {
        match stream.message().await {
            Ok(Some(event)) => {
                // Notices about gaps are numbered 0: they do not move the position.
                last_seq = last_seq.max(event.seq);
                if let Some(line) = stdout::render(args.output, &event) {
                    print_line(&line);
                }
            }
            Ok(None) => return 0,
            Err(status) => {
                super::report(&std::io::Error::other(format!(
                    "the event stream broke off ({}); the sensor stopped or restarted: watch again with --since {} to resume",
                    status.message(),
                    last_seq + 1
                )));
                return 1;
            }
        }
    }
}

pub(super) async fn status(args: StatusArgs) -> i32 {
    let mut client = match grpc::connect(&args.socket.socket).await {
        Ok(client) => client,
        Err(error) => return unreachable_sensor(&args.socket.socket, &error),
    };
    match client.get_status(GetStatusRequest {}).await {
        Ok(response) => {
            let status = response.into_inner().status.unwrap_or_default();
            match args.output {
                stdout::Output::Json => print_line(&serde_json::to_string(&status).unwrap_or_default()),
                _ => print_line(&crate::publish::format::status_text(&status)),
            }
            0
        }
        Err(status) => {
            super::report(&status);
            1
        }
    }
}

pub(super) fn unreachable_sensor(path: &std::path::Path, error: &tonic::transport::Error) -> i32 {
    super::report(&std::io::Error::other(format!(
        "cannot reach the sensor at {} ({error}); fix: start it with `modelwatch run` (as root) or pass --socket",
        path.display()
    )));
    1
}

fn print_line(line: &str) {
    #[expect(clippy::print_stdout, reason = "CLI output")]
    {
        println!("{line}");
    }
}

//! Events on standard output, as readable lines, JSON lines or OCSF. It is one more
//! reader of the log: a stalled pipe makes it fall behind (and catch up from the log),
//! never the sensor.

use tokio::io::{AsyncWriteExt as _, BufWriter};

use super::{Subscription, format};

/// How events are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// One readable line per event.
    Text,
    /// One JSON object per line (proto3 JSON mapping, plus `kind`).
    Json,
    /// One OCSF 1.8 JSON object per line.
    Ocsf,
    /// Nothing on stdout (gRPC only).
    None,
}

/// Formats one event.
#[must_use]
pub fn render(output: Output, event: &proto::v1::Event) -> Option<String> {
    match output {
        Output::Text => Some(format::text_line(event)),
        Output::Json => Some(format::json_line(event)),
        Output::Ocsf => Some(super::ocsf::json_line(event)),
        Output::None => None,
    }
}

/// Prints the subscription until it ends or stdout closes.
pub async fn print(mut subscription: Subscription, output: Output) {
    if output == Output::None {
        return;
    }
    let mut out = BufWriter::new(tokio::io::stdout());
    while let Some(event) = subscription.next_event().await {
        let Some(mut line) = render(output, &event) else { continue };
        line.push('\n');
        if out.write_all(line.as_bytes()).await.is_err() {
            return;
        }
        subscription.cursor().state().add_delivered(1);
        if out.flush().await.is_err() {
            return;
        }
    }
}

//! Events on standard output, as readable lines or JSON lines. It is one more
//! subscriber of the log: a stalled pipe makes it skip (and say so), never the sensor.

use std::sync::Arc;

use tokio::io::{AsyncWriteExt as _, BufWriter};

use super::{Subscription, format};

/// How events are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// One readable line per event.
    Text,
    /// One JSON object per line (proto3 JSON mapping, plus `kind`).
    Json,
    /// Nothing on stdout (gRPC only).
    None,
}

/// Formats one event.
#[must_use]
pub fn render(output: Output, event: &proto::v1::Event) -> Option<String> {
    match output {
        Output::Text => Some(format::text_line(event)),
        Output::Json => Some(format::json_line(event)),
        Output::None => None,
    }
}

/// Prints the subscription until it ends or stdout closes.
pub async fn print(mut subscription: Subscription, output: Output) {
    let mut out = BufWriter::new(tokio::io::stdout());
    while let Some(event) = subscription.next().await {
        let Some(mut line) = render(output, &Arc::clone(&event)) else { continue };
        line.push('\n');
        if out.write_all(line.as_bytes()).await.is_err() {
            return;
        }
        if out.flush().await.is_err() {
            return;
        }
    }
}

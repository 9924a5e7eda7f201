//! Prometheus metrics (text exposition format 0.0.4) on an opt-in local address:
//! `GET /metrics`. Events by kind, lost events by source and counter, kernel counters,
//! the ring buffers' size and fill, the log's memory window, readers and how far behind
//! each is, work queue depths, the backend of each hook, and the durable log.

use std::{fmt::Write as _, sync::Arc, time::Duration};

use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpListener,
};

use super::{EventLog, grpc::StatusFn};
use crate::domain::event_kind::kind_name;

/// Serves metrics on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, log: Arc<EventLog>, status: StatusFn) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else { continue };
        let log = Arc::clone(&log);
        let status = Arc::clone(&status);
        tokio::spawn(async move {
            let mut request = vec![0u8; 4096];
            let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut request)).await;
            let Ok(Ok(n)) = read else { return };
            let head = String::from_utf8_lossy(&request[..n]);
            let response = if head.starts_with("GET /metrics ") || head.starts_with("GET / ") {
                let body = render(&log, &status());
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
            } else {
                "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_owned()
            };
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}

/// Label values may carry paths or names: escaped as the format requires.
fn label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// The exposition text.
#[must_use]
pub fn render(log: &EventLog, status: &proto::v1::SensorStatus) -> String {
    let mut out = String::with_capacity(8 << 10);
    family(
        &mut out,
        "modelwatch_events_published_total",
        "counter",
        "Events published by this instance, by kind.",
    );
    for (kind, count) in log.published_by_kind() {
        let _ = writeln!(out, "modelwatch_events_published_total{{kind=\"{}\"}} {count}", kind_name(kind));
    }
    family(
        &mut out,
        "modelwatch_events_lost_total",
        "counter",
        "Events lost (announced by events_lost), by source and counter.",
    );
    for ((source, counter), count) in log.lost_by_reason() {
        let _ = writeln!(
            out,
            "modelwatch_events_lost_total{{source=\"{}\",counter=\"{}\"}} {count}",
            label(&source),
            label(&counter)
        );
    }
    family(&mut out, "modelwatch_kernel_counter_total", "counter", "Kernel-side counters summed over CPUs.");
    let mut counters: Vec<_> = status.kernel_counters.iter().collect();
    counters.sort();
    for (name, value) in counters {
        let _ = writeln!(out, "modelwatch_kernel_counter_total{{counter=\"{}\"}} {value}", label(name));
    }
    family(&mut out, "modelwatch_pipeline_drops_total", "counter", "Userspace drop and skip paths.");
    let mut drops: Vec<_> = status.pipeline_counters.iter().collect();
    drops.sort();
    for (name, value) in drops {
        let _ = writeln!(out, "modelwatch_pipeline_drops_total{{path=\"{}\"}} {value}", label(name));
    }
    family(&mut out, "modelwatch_ring_buffer_bytes", "gauge", "Size of each kernel ring buffer.");
    let _ = writeln!(out, "modelwatch_ring_buffer_bytes {}", status.ring_buffer_bytes);
    family(
        &mut out,
        "modelwatch_ring_buffer_fill_bytes",
        "gauge",
        "Bytes waiting in each kernel ring buffer now, and the most found when the drain woke.",
    );
    for ring in &status.rings {
        let name = label(&ring.name);
        let _ = writeln!(
            out,
            "modelwatch_ring_buffer_fill_bytes{{ring=\"{name}\",of=\"used\"}} {}",
            ring.used_bytes
        );
        let _ = writeln!(
            out,
            "modelwatch_ring_buffer_fill_bytes{{ring=\"{name}\",of=\"peak\"}} {}",
            ring.peak_used_bytes
        );
    }
    family(
        &mut out,
        "modelwatch_records_received_total",
        "counter",
        "Kernel records read from the ring buffers.",
    );
    let _ = writeln!(out, "modelwatch_records_received_total {}", status.records_received);
    let (held, capacity) = log.memory_window();
    family(
        &mut out,
        "modelwatch_log_memory_window_events",
        "gauge",
        "Events in the log's memory window, and its capacity.",
    );
    let _ = writeln!(out, "modelwatch_log_memory_window_events{{of=\"held\"}} {held}");
    let _ = writeln!(out, "modelwatch_log_memory_window_events{{of=\"capacity\"}} {capacity}");
    family(&mut out, "modelwatch_subscribers", "gauge", "Readers of the log, by kind.");
    let outlets = log.outlets();
    let last = log.last_visible();
    for kind in ["grpc", "ocsf", "otlp", "stdout", "file"] {
        let count = outlets.iter().filter(|o| o.kind.name() == kind).count();
        let _ = writeln!(out, "modelwatch_subscribers{{kind=\"{kind}\"}} {count}");
    }
    family(
        &mut out,
        "modelwatch_subscriber_behind_events",
        "gauge",
        "Events logged that a reader has not read yet.",
    );
    family(
        &mut out,
        "modelwatch_subscriber_queue_events",
        "gauge",
        "Events waiting in a reader's send queue.",
    );
    for (i, outlet) in outlets.iter().enumerate() {
        let labels = format!("kind=\"{}\",reader=\"{i}\",state=\"{}\"", outlet.kind.name(), outlet.state());
        let behind = (last + 1).saturating_sub(outlet.next_seq());
        let _ = writeln!(out, "modelwatch_subscriber_behind_events{{{labels}}} {behind}");
        let _ = writeln!(out, "modelwatch_subscriber_queue_events{{{labels}}} {}", outlet.queued());
    }
    family(
        &mut out,
        "modelwatch_work_queue_depth",
        "gauge",
        "Jobs waiting in each work queue, and its capacity.",
    );
    for queue in &status.queues {
        let name = label(&queue.name);
        let _ = writeln!(out, "modelwatch_work_queue_depth{{queue=\"{name}\",of=\"depth\"}} {}", queue.depth);
        let _ = writeln!(
            out,
            "modelwatch_work_queue_depth{{queue=\"{name}\",of=\"capacity\"}} {}",
            queue.capacity
        );
        let _ = writeln!(out, "modelwatch_work_queue_depth{{queue=\"{name}\",of=\"busy\"}} {}", queue.busy);
    }
    family(&mut out, "modelwatch_hook_info", "gauge", "The backend of each hook (1 attached, 0 not).");
    for hook in &status.hooks {
        let _ = writeln!(
            out,
            "modelwatch_hook_info{{watches=\"{}\",backend=\"{}\",attach_point=\"{}\"}} {}",
            label(&hook.watches),
            label(&hook.backend),
            label(&hook.attach_point),
            u8::from(hook.attached)
        );
    }
    let extent = log.extent();
    family(
        &mut out,
        "modelwatch_log_sequence",
        "gauge",
        "The durable log's first and last sequence numbers.",
    );
    let _ = writeln!(out, "modelwatch_log_sequence{{of=\"first\"}} {}", extent.first_seq);
    let _ = writeln!(out, "modelwatch_log_sequence{{of=\"last\"}} {}", extent.last_seq);
    family(&mut out, "modelwatch_log_bytes", "gauge", "The durable log's size on disk.");
    let _ = writeln!(out, "modelwatch_log_bytes {}", extent.bytes);
    family(&mut out, "modelwatch_log_segments", "gauge", "Segment files of the durable log.");
    let _ = writeln!(out, "modelwatch_log_segments {}", extent.segments);
    family(
        &mut out,
        "modelwatch_log_damaged_frames_total",
        "counter",
        "Damaged log frames found (skipped, announced).",
    );
    let _ = writeln!(out, "modelwatch_log_damaged_frames_total {}", extent.damaged);
    family(&mut out, "modelwatch_log_write_errors_total", "counter", "Batches the log could not write.");
    let _ = writeln!(out, "modelwatch_log_write_errors_total {}", log.write_errors());
    out
}

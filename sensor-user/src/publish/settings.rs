//! The `[publish]` configuration section (and its `modelwatch run` flags): where the
//! event log lives, the gRPC API's transports and limits, and the optional outlets.
//!
//! ```toml
//! [publish]
//! state_dir = "/var/lib/modelwatch"     # the event log: <state_dir>/events/
//! log_max_bytes = 1073741824            # oldest segments deleted past this
//!
//! [publish.api]
//! socket_group = "soc"                  # also let this group use the socket
//! tcp_listen = "0.0.0.0:50051"          # only with the three below (mutual TLS)
//! tls_cert = "/etc/modelwatch/server.pem"
//! tls_key = "/etc/modelwatch/server.key"
//! client_ca = "/etc/modelwatch/clients-ca.pem"
//!
//! [publish.otlp]
//! endpoint = "http://127.0.0.1:4317"    # OTLP/gRPC logs to a collector
//!
//! [publish.file]
//! path = "/var/log/modelwatch/events.jsonl"
//! format = "ocsf"                       # or "json"
//!
//! [publish.metrics]
//! listen = "127.0.0.1:9464"             # Prometheus text on /metrics
//! ```

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use serde::{Deserialize, Serialize};

use super::log::{LogSettings, StoreLimits};

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct PublishConfig {
    /// The sensor's state directory (systemd `StateDirectory`, a Kubernetes hostPath);
    /// the event log is in its `events/` directory.
    pub state_dir: PathBuf,
    /// The log's size cap: the oldest segments are deleted past it.
    pub log_max_bytes: u64,
    /// Segment size: the unit in which old events are deleted.
    pub log_segment_bytes: u64,
    /// How often the log is flushed to the device (a power cut loses at most this; a
    /// crash of the sensor loses nothing it published).
    pub sync_interval_ms: u64,
    /// Newest events kept in memory for readers near the head.
    pub memory_events: usize,
    pub api: ApiConfig,
    pub otlp: OtlpConfig,
    pub file: FileConfig,
    pub metrics: MetricsConfig,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// A group whose members may use the Unix socket too (socket 0660, its directory
    /// 0750); empty: the owner only (0600 and 0700).
    pub socket_group: String,
    /// A TCP address for the API, served only with mutual TLS (the three settings
    /// below); empty: no TCP.
    pub tcp_listen: String,
    /// PEM server certificate chain and key.
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    /// PEM CA certificates that client certificates must chain to.
    pub client_ca: PathBuf,
    /// Open connections at most (Unix and TCP each); more are closed at once.
    pub max_connections: usize,
    /// Event streams at most; more are refused with RESOURCE_EXHAUSTED.
    pub max_streams: usize,
    /// HTTP/2 ping interval: a client that does not answer within 20 s is dead and its
    /// connection closed.
    pub keepalive_secs: u64,
    /// A connection with no call in progress for this long is closed.
    pub idle_timeout_secs: u64,
    /// Events a subscriber's send queue holds; past it the subscriber reads from the
    /// log at its own pace.
    pub stream_queue: usize,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct OtlpConfig {
    /// OTLP/gRPC collector, `http://host:4317`; empty: off.
    pub endpoint: String,
    /// Where shipping starts the first time: `latest` (from now) or `earliest` (the
    /// whole log). Afterwards it resumes where it left off (`otlp.position` in the
    /// state directory).
    pub start: OtlpStart,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum OtlpStart {
    #[default]
    Latest,
    Earliest,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct FileConfig {
    /// JSON lines file; empty: off. Rotated to `.1`, `.2`... by size.
    pub path: PathBuf,
    pub format: FileFormat,
    pub max_bytes: u64,
    /// Rotated files kept.
    pub keep: u32,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum FileFormat {
    /// The proto3 JSON mapping of `Event`, with `kind` first.
    #[default]
    Json,
    /// OCSF 1.8.
    Ocsf,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Prometheus text on `http://<listen>/metrics`; empty: off.
    pub listen: String,
}

impl Default for PublishConfig {
    fn default() -> Self {
        Self {
            state_dir: PathBuf::from("/var/lib/modelwatch"),
            log_max_bytes: 1 << 30,
            log_segment_bytes: 64 << 20,
            sync_interval_ms: 1000,
            memory_events: 16_384,
            api: ApiConfig::default(),
            otlp: OtlpConfig::default(),
            file: FileConfig::default(),
            metrics: MetricsConfig::default(),
        }
    }
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            socket_group: String::new(),
            tcp_listen: String::new(),
            tls_cert: PathBuf::new(),
            tls_key: PathBuf::new(),
            client_ca: PathBuf::new(),
            max_connections: 64,
            max_streams: 32,
            keepalive_secs: 30,
            idle_timeout_secs: 600,
            stream_queue: 1024,
        }
    }
}

impl Default for FileConfig {
    fn default() -> Self {
        Self { path: PathBuf::new(), format: FileFormat::Json, max_bytes: 100 << 20, keep: 5 }
    }
}

impl PublishConfig {
    /// Checks what serde cannot; the message names the setting and the fix.
    ///
    /// # Errors
    /// A bad value, or TCP without mutual TLS.
    pub fn validate(&self) -> Result<(), String> {
        let api = &self.api;
        if !api.tcp_listen.is_empty() {
            api.tcp_listen
                .parse::<SocketAddr>()
                .map_err(|e| format!("publish.api.tcp_listen = {:?}: {e}", api.tcp_listen))?;
            let missing: Vec<&str> =
                [("tls_cert", &api.tls_cert), ("tls_key", &api.tls_key), ("client_ca", &api.client_ca)]
                    .into_iter()
                    .filter(|(_, path)| path.as_os_str().is_empty())
                    .map(|(name, _)| name)
                    .collect();
            if !missing.is_empty() {
                return Err(format!(
                    "publish.api.tcp_listen is set but {} {} not: the API is served on TCP only with mutual TLS (a server certificate and key, and the CA that client certificates must chain to)",
                    missing.join(", "),
                    if missing.len() == 1 { "is" } else { "are" }
                ));
            }
        }
        if !self.metrics.listen.is_empty() {
            self.metrics
                .listen
                .parse::<SocketAddr>()
                .map_err(|e| format!("publish.metrics.listen = {:?}: {e}", self.metrics.listen))?;
        }
        let endpoint = &self.otlp.endpoint;
        if !endpoint.is_empty() && !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            return Err(format!("publish.otlp.endpoint = {endpoint:?}: must start with http:// or https://"));
        }
        if self.log_segment_bytes < 4096 || self.log_max_bytes < self.log_segment_bytes {
            return Err(
                "publish.log_segment_bytes must be at least 4096 and at most publish.log_max_bytes".into()
            );
        }
        if api.max_connections == 0 || api.max_streams == 0 || api.stream_queue == 0 {
            return Err("publish.api.max_connections, max_streams and stream_queue must be positive".into());
        }
        Ok(())
    }

    /// The event log's settings.
    #[must_use]
    pub fn log_settings(&self) -> LogSettings {
        LogSettings {
            store: StoreLimits {
                dir: self.state_dir.join("events"),
                segment_bytes: self.log_segment_bytes,
                max_bytes: self.log_max_bytes,
            },
            memory_events: self.memory_events,
            sync_interval: Duration::from_millis(self.sync_interval_ms.max(1)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_without_mutual_tls_is_refused_with_what_is_missing() {
        let mut config = PublishConfig::default();
        config.api.tcp_listen = "127.0.0.1:50051".into();
        config.api.tls_cert = "/etc/cert.pem".into();
        let error = config.validate().expect_err("refused");
        assert!(error.contains("tls_key, client_ca are not"), "{error}");
        assert!(error.contains("mutual TLS"), "{error}");
        config.api.tls_key = "/etc/key.pem".into();
        config.api.client_ca = "/etc/ca.pem".into();
        config.validate().expect("complete");
    }

    #[test]
    fn the_section_parses_with_defaults() {
        let config: PublishConfig =
            toml::from_str("state_dir = \"/tmp/x\"\n[otlp]\nendpoint = \"http://127.0.0.1:4317\"\n")
                .expect("valid");
        assert_eq!(config.state_dir, PathBuf::from("/tmp/x"));
        assert_eq!(config.api.max_streams, 32);
        config.validate().expect("valid");
        assert!(toml::from_str::<PublishConfig>("[api]\ntcp = 1\n").is_err(), "unknown keys are errors");
    }
}

//! `modelwatch run`: the sensor.

use std::{path::PathBuf, sync::Arc};

use tokio::signal::unix::{SignalKind, signal};

use crate::{
    config::SensorConfig,
    publish::{grpc, stdout},
    sensor::Sensor,
};

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// TOML configuration file (every key optional).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// How events are printed on stdout.
    #[arg(long, short, value_enum, default_value_t = super::default_output())]
    output: stdout::Output,
    /// gRPC Unix socket (overrides the configuration).
    #[arg(long, env = "MODELWATCH_SOCKET")]
    socket: Option<PathBuf>,
    /// The approved-model catalog (TOML): reloaded on SIGHUP and when it changes.
    #[arg(long)]
    catalog: Option<PathBuf>,
    /// BPF ring buffer size in bytes: a power of two, at least 4096.
    #[arg(long)]
    ring_buffer_bytes: Option<u32>,
    /// Files at least this large are candidates whatever their name.
    #[arg(long)]
    size_threshold: Option<u64>,
    /// Publish exec/exit of every process, not only inference runtimes.
    #[arg(long)]
    all_processes: bool,
    /// Publish candidate files that are not models too (`candidate_file`).
    #[arg(long)]
    all_candidates: bool,
    /// Node name on events (default: $NODE_NAME, else the hostname).
    #[arg(long)]
    node: Option<String>,
    /// Hook backends: `auto` (fexit where the kernel allows, else tracepoints) or
    /// `tracepoint`.
    #[arg(long, value_enum, env = "MODELWATCH_BACKEND")]
    backend: Option<crate::source::hooks::BackendChoice>,
}

impl RunArgs {
    fn config(&self) -> Result<SensorConfig, crate::config::ConfigError> {
        let mut config = match &self.config {
            Some(path) => SensorConfig::from_file(path)?,
            None => SensorConfig::default(),
        };
        if let Some(socket) = &self.socket {
            config.socket.clone_from(socket);
        }
        if let Some(catalog) = &self.catalog {
            config.catalog = Some(catalog.clone());
        }
        if let Some(bytes) = self.ring_buffer_bytes {
            config.kernel.ring_buffer_bytes = bytes;
        }
        if let Some(threshold) = self.size_threshold {
            config.kernel.size_threshold_bytes = threshold;
        }
        if let Some(backend) = self.backend {
            config.kernel.backend = backend;
        }
        if let Some(node) = &self.node {
            config.node.clone_from(node);
        }
        config.events.all_processes |= self.all_processes;
        config.events.all_candidates |= self.all_candidates;
        config.validate().map_err(|message| crate::config::ConfigError::Invalid {
            path: PathBuf::from("(command line)"),
            message,
        })?;
        Ok(config)
    }
}

pub(super) async fn run(args: RunArgs) -> i32 {
    let config = match args.config() {
        Ok(config) => config,
        Err(error) => {
            super::report(&error);
            return 2;
        }
    };
    if let Err(error) = crate::source::loader::check_privileges() {
        super::report(&error);
        return 1;
    }
    let socket = config.socket.clone();
    // Bind before loading: a second sensor on the same socket fails fast and cleanly.
    let listener = match grpc::bind(&socket) {
        Ok(listener) => listener,
        Err(error) => {
            super::report(&error);
            return 1;
        }
    };
    let policy = match &config.catalog {
        Some(path) => match crate::policy::Policy::load(path) {
            Ok(policy) => policy,
            Err(error) => {
                super::report(&error);
                return 2;
            }
        },
        None => crate::policy::Policy::defaults(),
    };
    let (sensor, mut supervisor) = match Sensor::start(config, policy) {
        Ok((sensor, supervisor)) => (Arc::new(sensor), supervisor),
        Err(error) => {
            let _ = std::fs::remove_file(&socket);
            super::report(&error);
            return 1;
        }
    };
    tracing::info!(socket = %socket.display(), "modelwatch is running");
    let printer = tokio::spawn(stdout::print(sensor.log.subscribe(1), args.output));
    let service =
        grpc::SensorService::new(Arc::clone(&sensor.log), sensor.status_fn(), sensor.inventory.clone());
    let (stop, mut server_stop) = tokio::sync::watch::channel(false);
    let mut server = tokio::spawn(grpc::serve(listener, service, async move {
        let _ = server_stop.wait_for(|stop| *stop).await;
    }));
    let code = tokio::select! {
        result = &mut server => server_exit(result),
        (task, error) = supervisor.first_exit() => {
            let how = error.map_or_else(|| "ended".to_owned(), |e| if e.is_panic() { "panicked".to_owned() } else { e.to_string() });
            super::report(&std::io::Error::other(format!(
                "essential task `{task}` {how}: the sensor is blind, exiting so that it is restarted"
            )));
            1
        }
        () = shutdown_signal() => {
            let _ = stop.send(true);
            // Subscribers may hold their streams open forever: a short grace period,
            // then the sensor stops anyway (systemd and Kubernetes wait for it).
            match tokio::time::timeout(SHUTDOWN_GRACE, &mut server).await {
                Ok(result) => server_exit(result),
                Err(_) => {
                    server.abort();
                    0
                }
            }
        }
    };
    printer.abort();
    let _ = std::fs::remove_file(&socket);
    code
}

const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

fn server_exit(result: Result<Result<(), tonic::transport::Error>, tokio::task::JoinError>) -> i32 {
    match result {
        Ok(Ok(())) => 0,
        Ok(Err(error)) => {
            super::report(&error);
            1
        }
        Err(error) => {
            super::report(&error);
            1
        }
    }
}

/// SIGINT or SIGTERM.
pub(super) async fn shutdown_signal() {
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

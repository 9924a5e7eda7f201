//! `modelwatch run`: the sensor.

use std::sync::Arc;

use tokio::signal::unix::{SignalKind, signal};

use crate::{
    publish::{EventLog, grpc, log::OutletKind, stdout},
    sensor::{Sensor, Supervisor},
};

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    settings: super::config::ConfigArgs,
    /// How events are printed on stdout.
    #[arg(long, short, value_enum, default_value_t = super::default_output())]
    output: stdout::Output,
}

pub(super) async fn run(args: RunArgs) -> i32 {
    let config = match args.settings.effective() {
        Ok(effective) => effective.config,
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
    let publish = config.publish.clone();
    // Bind before loading: a second sensor on the same socket fails fast and cleanly.
    let listener = match crate::publish::transport::bind_unix(&socket, &publish.api.socket_group) {
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
    let outlets = match Outlets::prepare(&publish).await {
        Ok(outlets) => outlets,
        Err(error) => {
            let _ = std::fs::remove_file(&socket);
            super::report(error.as_ref());
            return 1;
        }
    };
    let log = match EventLog::open(config.node.clone(), &publish.log_settings()) {
        Ok(log) => Arc::new(log),
        Err(error) => {
            let _ = std::fs::remove_file(&socket);
            super::report(&error);
            return 1;
        }
    };
    let (sensor, mut supervisor) = match Sensor::start(config, policy, Arc::clone(&log)) {
        Ok((sensor, supervisor)) => (Arc::new(sensor), supervisor),
        Err(error) => {
            let _ = std::fs::remove_file(&socket);
            super::report(&error);
            return 1;
        }
    };
    tracing::info!(socket = %socket.display(), log = %log.directory().display(), "modelwatch is running");
    if args.output != stdout::Output::None {
        // stdout is the log shipper's path (journald, the container log): if it breaks,
        // the sensor exits to be restarted rather than publish to no one.
        supervisor.spawn(
            "stdout printer",
            stdout::print(log.subscribe(log.first_seq(), OutletKind::Stdout), args.output),
        );
    }
    let status = sensor.status_fn();
    let api = grpc::Api::new(
        Arc::clone(&log),
        Arc::clone(&status),
        sensor.inventory.clone(),
        grpc::ApiLimits { max_streams: publish.api.max_streams, stream_queue: publish.api.stream_queue },
    );
    let (stop, server_stop) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut stop = server_stop.clone();
        async move {
            let _ = stop.wait_for(|stop| *stop).await;
        }
    };
    let settings = server_settings(&publish);
    let mut server = tokio::spawn(grpc::serve_unix(
        listener,
        grpc::Routes::new(Arc::clone(&api)),
        settings.clone(),
        stopped(),
    ));
    outlets.start(&mut supervisor, &log, &publish, &api, status, settings, stopped());
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
    // Ends every task (outlets, printer, pipeline) before the log closes.
    drop(supervisor);
    // What was published is written before the process ends.
    log.close();
    let _ = std::fs::remove_file(&socket);
    code
}

fn server_settings(publish: &crate::publish::settings::PublishConfig) -> grpc::ServerSettings {
    grpc::ServerSettings {
        keepalive: std::time::Duration::from_secs(publish.api.keepalive_secs.max(1)),
        connection_limits: crate::publish::transport::ConnectionLimits {
            max_connections: publish.api.max_connections,
            idle_timeout: std::time::Duration::from_secs(publish.api.idle_timeout_secs.max(1)),
        },
    }
}

/// The optional outlets, their sockets bound before the probes load so that a
/// configuration mistake stops the start-up with a clear message.
struct Outlets {
    tcp: Option<(tokio::net::TcpListener, tonic::transport::ServerTlsConfig)>,
    metrics: Option<tokio::net::TcpListener>,
}

impl Outlets {
    async fn prepare(
        publish: &crate::publish::settings::PublishConfig,
    ) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        use crate::publish::transport;
        let tcp = if publish.api.tcp_listen.is_empty() {
            None
        } else {
            let tls = transport::tls::server_config(&publish.api)?;
            Some((transport::bind_tcp(&publish.api.tcp_listen).await?, tls))
        };
        let metrics = if publish.metrics.listen.is_empty() {
            None
        } else {
            Some(transport::bind_tcp(&publish.metrics.listen).await?)
        };
        Ok(Self { tcp, metrics })
    }

    /// Starts the outlets as supervised tasks: one that ends takes the sensor down
    /// with its name, instead of leaving a SOC's feed silently dry.
    #[expect(clippy::too_many_arguments, reason = "the parts of the API the outlets share")]
    fn start(
        self,
        supervisor: &mut Supervisor,
        log: &Arc<EventLog>,
        publish: &crate::publish::settings::PublishConfig,
        api: &Arc<grpc::Api>,
        status: grpc::StatusFn,
        settings: grpc::ServerSettings,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) {
        if let Some((listener, tls)) = self.tcp {
            let routes = grpc::Routes::new(Arc::clone(api));
            supervisor.spawn("gRPC TCP server", async move {
                if let Err(error) = grpc::serve_tcp(listener, tls, routes, settings, shutdown).await {
                    super::report(&error);
                }
            });
        }
        if let Some(listener) = self.metrics {
            supervisor.spawn(
                "Prometheus endpoint",
                crate::publish::metrics::serve(listener, Arc::clone(log), status),
            );
        }
        if !publish.otlp.endpoint.is_empty() {
            let ship =
                crate::publish::otlp::ship(Arc::clone(log), publish.otlp.clone(), publish.state_dir.clone());
            supervisor.spawn("OTLP shipper", ship);
        }
        if !publish.file.path.as_os_str().is_empty() {
            supervisor.spawn(
                "JSON file writer",
                crate::publish::jsonl::write(Arc::clone(log), publish.file.clone()),
            );
        }
    }
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

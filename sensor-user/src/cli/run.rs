//! `modelwatch run`: the sensor.

use std::sync::Arc;

use tokio::signal::unix::{SignalKind, signal};

use crate::{
    publish::{grpc, stdout},
    sensor::Sensor,
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
    if let Err(error) = secure_socket_directory(&socket) {
        super::report(&error);
        return 1;
    }
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

/// The socket's directory is the API's access control, so it is the sensor's alone:
/// mode 0700, even when it already existed with another mode (a Kubernetes hostPath is
/// created 0755). A directory that holds anything but the socket is shared (`/tmp`,
/// `/run`) and keeps its mode: the socket itself is 0600.
fn secure_socket_directory(socket: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let Some(dir) = socket.parent().filter(|d| !d.as_os_str().is_empty()) else { return Ok(()) };
    let context = |what: &str, error: std::io::Error| {
        std::io::Error::new(error.kind(), format!("socket directory {}: {what}: {error}", dir.display()))
    };
    std::fs::create_dir_all(dir).map_err(|e| context("cannot create it", e))?;
    let meta = std::fs::symlink_metadata(dir).map_err(|e| context("cannot stat it", e))?;
    if !meta.is_dir() {
        return Err(std::io::Error::other(format!(
            "socket directory {} is not a directory (a symlink?); refusing to serve there",
            dir.display()
        )));
    }
    let only_the_socket = std::fs::read_dir(dir)
        .map_err(|e| context("cannot list it", e))?
        .flatten()
        .all(|entry| entry.path() == socket);
    if only_the_socket && meta.permissions().mode() & 0o777 != 0o700 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| context("cannot make it 0700", e))?;
    }
    Ok(())
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

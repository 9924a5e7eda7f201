//! The `modelwatch.v1.Sensor` service on a Unix socket that only its owner may open.
//! No TCP listener: the API carries what a SOC sees about a machine, and a local socket
//! with file permissions is authenticated by the kernel.

use std::{
    os::unix::fs::{FileTypeExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
    pin::Pin,
    sync::Arc,
};

use proto::v1::{
    Event, EventKind, GetStatusRequest, GetStatusResponse, ListInventoryRequest, ListInventoryResponse,
    SensorStatus, StreamEventsRequest,
    sensor_server::{Sensor, SensorServer},
};
use thiserror::Error;
use tokio::{net::UnixListener, sync::mpsc};
use tokio_stream::{Stream, wrappers::ReceiverStream};
use tonic::{Request, Response, Status};

use super::{
    EventLog,
    format::{kind_from_name, kind_of},
};

/// Produces the current status on demand.
pub type StatusFn = Arc<dyn Fn() -> SensorStatus + Send + Sync>;

/// Asks the pipeline for its inventory (it answers on the oneshot).
pub type InventorySender = mpsc::Sender<tokio::sync::oneshot::Sender<proto::v1::Inventory>>;

#[derive(Debug, Error)]
pub enum SocketError {
    #[error("cannot create the socket directory {path}: {source}")]
    Directory {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("another modelwatch is already serving {path}; fix: stop it, or pass --socket")]
    InUse { path: PathBuf },
    #[error("{path} exists and is not a socket; refusing to replace it")]
    NotASocket { path: PathBuf },
    #[error("cannot listen on {path}: {source}")]
    Bind {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Binds the API socket: parent directory 0700, socket 0600, a stale socket replaced.
///
/// # Errors
/// The directory cannot be created, the path is something else, or bind fails.
pub fn bind(path: &Path) -> Result<UnixListener, SocketError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.exists()
    {
        std::fs::create_dir_all(dir)
            .and_then(|()| std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)))
            .map_err(|source| SocketError::Directory { path: dir.to_path_buf(), source })?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            // A socket someone answers on belongs to a live sensor; only a stale one goes.
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(SocketError::InUse { path: path.to_path_buf() });
            }
            let _ = std::fs::remove_file(path);
        }
        Ok(_) => return Err(SocketError::NotASocket { path: path.to_path_buf() }),
        Err(_) => {}
    }
    // The umask closes the window between bind and chmod.
    // SAFETY: umask has no preconditions.
    let previous = unsafe { libc::umask(0o177) };
    let listener = UnixListener::bind(path);
    // SAFETY: as above.
    unsafe { libc::umask(previous) };
    let listener = listener.map_err(|source| SocketError::Bind { path: path.to_path_buf(), source })?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|source| SocketError::Bind { path: path.to_path_buf(), source })?;
    Ok(listener)
}

/// The service implementation.
pub struct SensorService {
    log: Arc<EventLog>,
    status: StatusFn,
    inventory: InventorySender,
}

impl SensorService {
    #[must_use]
    pub fn new(log: Arc<EventLog>, status: StatusFn, inventory: InventorySender) -> SensorServer<Self> {
        SensorServer::new(Self { log, status, inventory })
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<Event, Status>> + Send>>;

#[tonic::async_trait]
impl Sensor for SensorService {
    type StreamEventsStream = EventStream;

    async fn stream_events(
        &self,
        request: Request<StreamEventsRequest>,
    ) -> Result<Response<Self::StreamEventsStream>, Status> {
        let request = request.into_inner();
        let mut wanted = Vec::with_capacity(request.kinds.len());
        for name in &request.kinds {
            let Some(kind) = kind_from_name(name) else {
                return Err(Status::invalid_argument(format!(
                    "unknown event kind {name:?}; known kinds are the payload names of modelwatch.v1.Event (EventKind)"
                )));
            };
            wanted.push(kind);
        }
        let mut subscription = self.log.subscribe(request.since_seq);
        // A bounded hand-off: when the client reads slowly this fills, the subscription
        // lags, and the client is told what it missed instead of slowing the sensor.
        let (tx, rx) = mpsc::channel(1024);
        tokio::spawn(async move {
            while let Some(event) = subscription.next().await {
                let kind = kind_of(event.payload.as_ref());
                if !wanted.is_empty() && kind != EventKind::EventsLost && !wanted.contains(&kind) {
                    continue;
                }
                if tx.send(Ok((*event).clone())).await.is_err() {
                    break;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn list_inventory(
        &self,
        _request: Request<ListInventoryRequest>,
    ) -> Result<Response<ListInventoryResponse>, Status> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.inventory.send(reply).await.map_err(|_| Status::unavailable("the pipeline is not running"))?;
        let mut inventory = answer.await.map_err(|_| Status::unavailable("the pipeline did not answer"))?;
        self.log.node().clone_into(&mut inventory.node);
        Ok(Response::new(ListInventoryResponse { inventory: Some(inventory) }))
    }

    async fn get_status(
        &self,
        _request: Request<GetStatusRequest>,
    ) -> Result<Response<GetStatusResponse>, Status> {
        Ok(Response::new(GetStatusResponse { status: Some((self.status)()) }))
    }
}

/// Serves the API until `shutdown` resolves.
///
/// # Errors
/// The transport fails.
pub async fn serve(
    listener: UnixListener,
    service: SensorServer<SensorService>,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
    tonic::transport::Server::builder()
        .add_service(service)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
}

/// A client connected to the sensor's Unix socket.
///
/// # Errors
/// The socket does not exist or refuses the connection.
pub async fn connect(
    path: &Path,
) -> Result<proto::v1::sensor_client::SensorClient<tonic::transport::Channel>, tonic::transport::Error> {
    let path = path.to_path_buf();
    // The URI is required by tonic but unused: the connector dials the socket.
    let channel = tonic::transport::Endpoint::from_static("http://modelwatch.local")
        .connect_with_connector(tower::service_fn(move |_| {
            let path = path.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(path).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
            }
        }))
        .await?;
    Ok(proto::v1::sensor_client::SensorClient::new(channel))
}

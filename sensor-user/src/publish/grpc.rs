//! The `modelwatch.v1.Sensor` service, with the standard health and reflection
//! services. `StreamEvents` is served by a route of its own that sends each event's
//! bytes as they were encoded at publish time ([`PreEncoded`]); the other calls go
//! through the generated server.

use std::{
    collections::VecDeque,
    convert::Infallible,
    path::{Path, PathBuf},
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use prost::Message as _;
use proto::v1::{
    GetStatusRequest, GetStatusResponse, ListInventoryRequest, ListInventoryResponse, ModelFile, OcsfRecord,
    ScanPathRequest, ScanPathResponse, ScanProblem, SensorStatus, StreamEventsRequest,
    sensor_server::{Sensor, SensorServer},
};
use tokio_stream::Stream;
use tonic::{Request, Response, Status, server::NamedService};

use super::{
    EventLog,
    codec::PreEncoded,
    filter::Filter,
    log::{Cursor, Item, OutletKind, cursor::notice},
    transport::{self, CallGuard},
};

/// Produces the current status on demand.
pub type StatusFn = Arc<dyn Fn() -> SensorStatus + Send + Sync>;

/// Asks the pipeline for its inventory (it answers on the oneshot).
pub type InventorySender = tokio::sync::mpsc::Sender<tokio::sync::oneshot::Sender<proto::v1::Inventory>>;

/// The service's state.
pub struct Api {
    log: Arc<EventLog>,
    status: StatusFn,
    inventory: InventorySender,
    streams: Arc<AtomicUsize>,
    max_streams: usize,
    batch: usize,
    scans: tokio::sync::Semaphore,
}

/// The service's limits.
#[derive(Clone, Copy, Debug)]
pub struct ApiLimits {
    pub max_streams: usize,
    /// Events a stream takes from the log at a time (its send queue).
    pub stream_queue: usize,
}

impl Api {
    #[must_use]
    pub fn new(
        log: Arc<EventLog>,
        status: StatusFn,
        inventory: InventorySender,
        limits: ApiLimits,
    ) -> Arc<Self> {
        Arc::new(Self {
            log,
            status,
            inventory,
            streams: Arc::new(AtomicUsize::new(0)),
            max_streams: limits.max_streams,
            batch: limits.stream_queue.clamp(1, 4096),
            scans: tokio::sync::Semaphore::new(1),
        })
    }

    /// Checks a stream request and opens its cursor.
    fn open(&self, request: &Request<StreamEventsRequest>, kind: OutletKind) -> Result<Subscriber, Status> {
        let message = request.get_ref();
        let filter = Filter::from_request(message).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let next = self.log.next_seq();
        if message.since_seq > next {
            return Err(Status::out_of_range(format!(
                "since_seq {} is beyond this log (its next event is {next}): the log was reset or this is another machine; resume with since_seq 1 (everything kept) or 0 (live)",
                message.since_seq
            )));
        }
        if self.streams.fetch_add(1, Ordering::SeqCst) >= self.max_streams {
            self.streams.fetch_sub(1, Ordering::SeqCst);
            return Err(Status::resource_exhausted(format!(
                "{} event streams are open, the most this sensor serves (publish.api.max_streams)",
                self.max_streams
            )));
        }
        let slot = StreamSlot(Arc::clone(&self.streams));
        let call = transport::activity_of(request).map(|a| a.call());
        Ok(Subscriber {
            cursor: self.log.cursor(message.since_seq, kind),
            filter,
            batch: Vec::with_capacity(self.batch),
            size: self.batch,
            _slot: slot,
            _call: call,
        })
    }
}

/// One open stream: its cursor and filter, and the slots it holds.
struct Subscriber {
    cursor: Cursor,
    filter: Filter,
    batch: Vec<Item>,
    size: usize,
    _slot: StreamSlot,
    _call: Option<CallGuard>,
}

impl Subscriber {
    /// The next wanted items, in order; `false` when the log closed.
    async fn fill<T>(&mut self, ready: &mut VecDeque<T>, convert: impl Fn(Item) -> Option<T>) -> bool {
        while ready.is_empty() {
            if !self.cursor.next_batch(self.size, &mut self.batch).await {
                return false;
            }
            ready.extend(
                self.batch
                    .drain(..)
                    .filter(|item| match item {
                        Item::Event(record) => self.filter.matches(record),
                        Item::Gap(_) => true,
                    })
                    .filter_map(&convert),
            );
        }
        let state = self.cursor.state();
        state.add_delivered(ready.len() as u64);
        state.set_queued(ready.len());
        true
    }
}

struct StreamSlot(Arc<AtomicUsize>);

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// A stream of what `convert` makes of the subscriber's items.
fn stream_of<T: Send + 'static>(
    subscriber: Subscriber,
    convert: impl Fn(Item) -> Option<T> + Send + Sync + 'static,
) -> BoxStream<T> {
    let state = (subscriber, VecDeque::new(), convert);
    Box::pin(futures_util::stream::unfold(state, |(mut subscriber, mut ready, convert)| async move {
        if ready.is_empty() && !subscriber.fill(&mut ready, &convert).await {
            return None;
        }
        let next = ready.pop_front()?;
        Some((Ok(next), (subscriber, ready, convert)))
    }))
}

fn encoded(item: Item) -> Option<Bytes> {
    match item {
        Item::Event(record) => Some(record.bytes),
        Item::Gap(gap) => Some(Bytes::from(notice(&gap).encode_to_vec())),
    }
}

fn ocsf(item: Item) -> Option<OcsfRecord> {
    let event = match item {
        Item::Event(record) => record.decode().ok()?,
        Item::Gap(gap) => notice(&gap),
    };
    let (class_uid, record) = super::ocsf::record(&event);
    Some(OcsfRecord { seq: event.seq, instance: event.instance, class_uid, json: record.to_string() })
}

#[tonic::async_trait]
impl Sensor for Api {
    type StreamEventsStream = BoxStream<proto::v1::Event>;
    type StreamOcsfStream = BoxStream<OcsfRecord>;

    /// Served by [`Routes`] with pre-encoded events; this path is never taken.
    async fn stream_events(
        &self,
        _request: Request<StreamEventsRequest>,
    ) -> Result<Response<Self::StreamEventsStream>, Status> {
        Err(Status::internal("StreamEvents is served by the pre-encoded route"))
    }

    async fn stream_ocsf(
        &self,
        request: Request<StreamEventsRequest>,
    ) -> Result<Response<Self::StreamOcsfStream>, Status> {
        let subscriber = self.open(&request, OutletKind::Ocsf)?;
        Ok(Response::new(stream_of(subscriber, ocsf)))
    }

    async fn get_status(
        &self,
        request: Request<GetStatusRequest>,
    ) -> Result<Response<GetStatusResponse>, Status> {
        let _call = transport::activity_of(&request).map(|a| a.call());
        Ok(Response::new(GetStatusResponse { status: Some((self.status)()) }))
    }

    async fn list_inventory(
        &self,
        request: Request<ListInventoryRequest>,
    ) -> Result<Response<ListInventoryResponse>, Status> {
        let _call = transport::activity_of(&request).map(|a| a.call());
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.inventory.send(reply).await.map_err(|_| Status::unavailable("the pipeline is not running"))?;
        let mut inventory = answer.await.map_err(|_| Status::unavailable("the pipeline did not answer"))?;
        self.log.node().clone_into(&mut inventory.node);
        Ok(Response::new(ListInventoryResponse { inventory: Some(inventory) }))
    }

    async fn scan_path(
        &self,
        request: Request<ScanPathRequest>,
    ) -> Result<Response<ScanPathResponse>, Status> {
        let _call = transport::activity_of(&request).map(|a| a.call());
        let request = request.into_inner();
        let path = PathBuf::from(&request.path);
        if !path.is_absolute() {
            return Err(Status::invalid_argument(format!("path {:?} is not absolute", request.path)));
        }
        if let Err(error) = std::fs::symlink_metadata(&path) {
            return Err(match error.kind() {
                std::io::ErrorKind::NotFound => {
                    Status::not_found(format!("{} does not exist", path.display()))
                }
                std::io::ErrorKind::PermissionDenied => {
                    Status::permission_denied(format!("{}: {error}", path.display()))
                }
                _ => Status::unavailable(format!("{}: {error}", path.display())),
            });
        }
        let Ok(_permit) = self.scans.try_acquire() else {
            return Err(Status::resource_exhausted("a scan is already running; retry when it ends"));
        };
        let scan = tokio::task::spawn_blocking(move || scan_path(&path, &request));
        match tokio::time::timeout(SCAN_DEADLINE, scan).await {
            Ok(Ok(response)) => Ok(Response::new(response)),
            Ok(Err(error)) => Err(Status::internal(format!("the scan failed: {error}"))),
            Err(_) => Err(Status::deadline_exceeded(format!(
                "the scan took more than {} s; scan a narrower path",
                SCAN_DEADLINE.as_secs()
            ))),
        }
    }
}

const SCAN_DEADLINE: Duration = Duration::from_secs(120);
const MAX_SCAN_FILES: u32 = 10_000;

fn scan_path(path: &Path, request: &ScanPathRequest) -> ScanPathResponse {
    use crate::analyze::scan::{ScanOptions, scan};
    let cap = if request.max_files == 0 { MAX_SCAN_FILES } else { request.max_files.min(MAX_SCAN_FILES) };
    let options = ScanOptions { hash: request.hash, ..ScanOptions::default() };
    let mut response = ScanPathResponse::default();
    scan(
        &[path.to_path_buf()],
        &options,
        |scanned| {
            response.files_examined += 1;
            if response.files.len() >= cap as usize {
                response.truncated = true;
                return;
            }
            let wanted =
                request.all_files || scanned.report.format.is_model() || !scanned.report.findings.is_empty();
            if !wanted {
                return;
            }
            let mut file = ModelFile {
                path: scanned.path.to_string_lossy().into_owned(),
                identity: Some(proto::v1::FileIdentity { size: scanned.report.size, ..Default::default() }),
                sha256: scanned.sha256.clone().unwrap_or_default(),
                ..ModelFile::default()
            };
            crate::correlate::convert::add_analysis(&mut file, &scanned.report);
            response.files.push(file);
        },
        |problem| {
            if response.problems.len() < cap as usize {
                response.problems.push(ScanProblem {
                    path: problem.path.to_string_lossy().into_owned(),
                    message: problem.message,
                });
            }
        },
    );
    response
}

/// The `modelwatch.v1.Sensor` service as the server sees it: `StreamEvents` on its
/// own route, the rest generated.
#[derive(Clone)]
pub struct Routes {
    api: Arc<Api>,
    generated: SensorServer<Api>,
}

impl Routes {
    #[must_use]
    pub fn new(api: Arc<Api>) -> Self {
        let generated = SensorServer::from_arc(Arc::clone(&api));
        Self { api, generated }
    }
}

const STREAM_EVENTS: &str = "/modelwatch.v1.Sensor/StreamEvents";

/// `StreamEvents` with pre-encoded events.
struct StreamEventsRoute(Arc<Api>);

impl tower::Service<Request<StreamEventsRequest>> for StreamEventsRoute {
    type Response = Response<BoxStream<Bytes>>;
    type Error = Status;
    type Future = std::future::Ready<Result<Self::Response, Status>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<StreamEventsRequest>) -> Self::Future {
        let result = self.0.open(&request, OutletKind::Grpc).map(|s| Response::new(stream_of(s, encoded)));
        std::future::ready(result)
    }
}

impl tower::Service<http::Request<tonic::body::Body>> for Routes {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        if request.uri().path() == STREAM_EVENTS {
            let route = StreamEventsRoute(Arc::clone(&self.api));
            return Box::pin(async move {
                let mut grpc = tonic::server::Grpc::new(PreEncoded::<StreamEventsRequest>::default());
                Ok(grpc.server_streaming(route, request).await)
            });
        }
        Box::pin(tower::Service::call(&mut self.generated, request))
    }
}

impl NamedService for Routes {
    const NAME: &'static str = "modelwatch.v1.Sensor";
}

/// How the servers run.
#[derive(Clone, Debug)]
pub struct ServerSettings {
    pub keepalive: Duration,
    pub connection_limits: transport::ConnectionLimits,
}

/// A server builder with the sensor's services: the API, health, reflection.
fn router(
    routes: Routes,
    settings: &ServerSettings,
    builder: tonic::transport::Server,
) -> tonic::transport::server::Router {
    let (health_reporter, health) = tonic_health::server::health_reporter();
    // The sensor serves only once it runs: healthy from the start.
    tokio::spawn(async move {
        health_reporter.set_serving::<Routes>().await;
    });
    // Both versions: grpcurl asks v1, the Python and older clients v1alpha.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let mut builder = builder
        .http2_keepalive_interval(Some(settings.keepalive))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)))
        .max_concurrent_streams(Some(64));
    builder
        .add_service(routes)
        .add_service(health)
        .add_optional_service(reflection().build_v1().ok())
        .add_optional_service(reflection().build_v1alpha().ok())
}

/// Serves the API on the Unix socket until `shutdown` resolves.
///
/// # Errors
/// The transport fails.
pub async fn serve_unix(
    listener: tokio::net::UnixListener,
    routes: Routes,
    settings: ServerSettings,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let incoming = transport::unix_incoming(listener, settings.connection_limits.clone());
    router(routes, &settings, tonic::transport::Server::builder())
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
}

/// Serves the API on TCP with mutual TLS until `shutdown` resolves.
///
/// # Errors
/// The TLS settings are refused or the transport fails.
pub async fn serve_tcp(
    listener: tokio::net::TcpListener,
    tls: tonic::transport::ServerTlsConfig,
    routes: Routes,
    settings: ServerSettings,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let incoming = transport::tcp_incoming(listener, settings.connection_limits.clone());
    let builder = tonic::transport::Server::builder().tls_config(tls)?;
    router(routes, &settings, builder).serve_with_incoming_shutdown(incoming, shutdown).await
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
    let channel = tonic::transport::Endpoint::from_static("http://localhost")
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

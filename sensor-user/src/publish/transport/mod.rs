//! Where the API listens, and the connections it accepts.
//!
//! - The Unix socket (the default): 0600 in a directory forced to 0700, or 0660/0750
//!   for one configured group. The kernel authenticates who connects.
//! - TCP only with mutual TLS: `tls_config` in the server, built in [`tls`].
//!
//! Every connection is counted (past `max_connections` a new one is closed at once),
//! and one with no call in progress for `idle_timeout` is closed; a dead peer is found
//! by HTTP/2 pings (the server's keepalive settings).

pub mod authority;
pub mod tls;

use std::{
    ffi::CString,
    future::Future as _,
    io,
    os::unix::fs::{MetadataExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
    pin::Pin,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use thiserror::Error;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, UnixListener},
};
use tokio_stream::{Stream, StreamExt as _};

pub use self::authority::AuthorityFix;

#[derive(Debug, Error)]
pub enum SocketError {
    #[error("cannot create the socket directory {path}: {source}")]
    Directory {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path} is a shared directory ({why}); the socket needs a directory of its own (it is made 0700): fix: pass e.g. --socket /run/modelwatch/modelwatch.sock"
    )]
    SharedDirectory { path: PathBuf, why: String },
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
    #[error("publish.api.socket_group: no group named {group:?}")]
    UnknownGroup { group: String },
    #[error("cannot listen on TCP {address}: {source}")]
    Tcp {
        address: String,
        #[source]
        source: std::io::Error,
    },
}

/// Directories that belong to the system: never chmod-ed, so never a socket's home.
const SYSTEM_DIRECTORIES: [&str; 12] = [
    "/", "/run", "/var/run", "/var", "/tmp", "/var/tmp", "/dev/shm", "/etc", "/usr", "/home", "/root",
    "/var/lib",
];

/// Binds the API socket: the directory forced to 0700 (0750 with a group), the socket
/// 0600 (0660 with a group), a stale socket replaced.
///
/// # Errors
/// The directory is shared or cannot be made, the path is something else, or bind
/// fails.
pub fn bind_unix(path: &Path, group: &str) -> Result<UnixListener, SocketError> {
    let gid = if group.is_empty() { None } else { Some(group_id(group)?) };
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    prepare_directory(dir, gid)?;
    match std::fs::symlink_metadata(path) {
        Ok(meta) if std::os::unix::fs::FileTypeExt::is_socket(&meta.file_type()) => {
            // A socket someone answers on belongs to a live sensor; only a stale one goes.
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(SocketError::InUse { path: path.to_path_buf() });
            }
            let _ = std::fs::remove_file(path);
        }
        Ok(_) => return Err(SocketError::NotASocket { path: path.to_path_buf() }),
        Err(_) => {}
    }
    let bind_error = |source| SocketError::Bind { path: path.to_path_buf(), source };
    // The umask closes the window between bind and chmod.
    // SAFETY: umask has no preconditions.
    let previous = unsafe { libc::umask(0o177) };
    let listener = UnixListener::bind(path);
    // SAFETY: as above.
    unsafe { libc::umask(previous) };
    let listener = listener.map_err(bind_error)?;
    let mode = if let Some(gid) = gid {
        std::os::unix::fs::chown(path, None, Some(gid)).map_err(bind_error)?;
        0o660
    } else {
        0o600
    };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(bind_error)?;
    Ok(listener)
}

fn prepare_directory(dir: &Path, gid: Option<u32>) -> Result<(), SocketError> {
    let directory_error = |source| SocketError::Directory { path: dir.to_path_buf(), source };
    let shared = |why: &str| SocketError::SharedDirectory { path: dir.to_path_buf(), why: why.to_owned() };
    if !dir.exists() {
        std::fs::create_dir_all(dir).map_err(directory_error)?;
    }
    let canonical = dir.canonicalize().map_err(directory_error)?;
    if SYSTEM_DIRECTORIES.iter().any(|s| canonical == Path::new(s)) {
        return Err(shared("a system directory"));
    }
    let meta = std::fs::metadata(&canonical).map_err(directory_error)?;
    // SAFETY: no preconditions.
    if meta.uid() != unsafe { libc::geteuid() } {
        return Err(shared(&format!("owned by uid {}", meta.uid())));
    }
    if meta.mode() & 0o1002 != 0 {
        return Err(shared("sticky or writable by everyone"));
    }
    let mode = if let Some(gid) = gid {
        std::os::unix::fs::chown(&canonical, None, Some(gid)).map_err(directory_error)?;
        0o750
    } else {
        0o700
    };
    std::fs::set_permissions(&canonical, std::fs::Permissions::from_mode(mode)).map_err(directory_error)
}

/// A group by name or number.
fn group_id(group: &str) -> Result<u32, SocketError> {
    if let Ok(gid) = group.parse::<u32>() {
        return Ok(gid);
    }
    let unknown = || SocketError::UnknownGroup { group: group.to_owned() };
    let name = CString::new(group).map_err(|_| unknown())?;
    let mut entry: libc::group = unsafe { std::mem::zeroed() };
    let mut buffer = vec![0 as libc::c_char; 16 << 10];
    let mut found: *mut libc::group = std::ptr::null_mut();
    // SAFETY: valid pointers to owned buffers of the given sizes.
    let rc =
        unsafe { libc::getgrnam_r(name.as_ptr(), &mut entry, buffer.as_mut_ptr(), buffer.len(), &mut found) };
    if rc != 0 || found.is_null() {
        return Err(unknown());
    }
    Ok(entry.gr_gid)
}

/// Binds the TCP address (served with mutual TLS only; see [`tls`]).
///
/// # Errors
/// The address is bad or taken.
pub async fn bind_tcp(address: &str) -> Result<TcpListener, SocketError> {
    TcpListener::bind(address)
        .await
        .map_err(|source| SocketError::Tcp { address: address.to_owned(), source })
}

/// Limits shared by the connections of one listener.
#[derive(Clone, Debug)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    pub idle_timeout: Duration,
}

/// Calls in progress on one connection, and when the last one ended.
#[derive(Debug)]
pub struct Activity {
    calls: AtomicUsize,
    quiet_since: Mutex<Instant>,
}

impl Activity {
    /// Marks a call in progress until the guard is dropped.
    #[must_use]
    pub fn call(self: &Arc<Self>) -> CallGuard {
        self.calls.fetch_add(1, Ordering::SeqCst);
        CallGuard(Arc::clone(self))
    }

    fn idle_deadline(&self, timeout: Duration) -> Option<Instant> {
        (self.calls.load(Ordering::SeqCst) == 0)
            .then(|| *self.quiet_since.lock().unwrap_or_else(PoisonError::into_inner) + timeout)
    }
}

/// A call in progress (see [`Activity::call`]).
pub struct CallGuard(Arc<Activity>);

impl Drop for CallGuard {
    fn drop(&mut self) {
        if self.0.calls.fetch_sub(1, Ordering::SeqCst) == 1 {
            *self.0.quiet_since.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now();
        }
    }
}

/// What a request knows about its connection (a request extension, inside
/// `TlsConnectInfo` on TCP).
#[derive(Clone, Debug)]
pub struct ConnInfo {
    pub activity: Arc<Activity>,
}

/// The activity of the request's connection, on either transport.
#[must_use]
pub fn activity_of<T>(request: &tonic::Request<T>) -> Option<Arc<Activity>> {
    let extensions = request.extensions();
    extensions
        .get::<ConnInfo>()
        .or_else(|| {
            extensions
                .get::<tonic::transport::server::TlsConnectInfo<ConnInfo>>()
                .map(tonic::transport::server::TlsConnectInfo::get_ref)
        })
        .map(|info| Arc::clone(&info.activity))
}

/// An accepted connection: counted, closed when idle.
pub struct Conn<IO> {
    io: IO,
    info: ConnInfo,
    idle_timeout: Duration,
    timer: Pin<Box<tokio::time::Sleep>>,
    open: Arc<AtomicUsize>,
}

impl<IO> Drop for Conn<IO> {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::SeqCst);
    }
}

impl<IO> tonic::transport::server::Connected for Conn<IO> {
    type ConnectInfo = ConnInfo;

    fn connect_info(&self) -> ConnInfo {
        self.info.clone()
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Conn<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if let Poll::Ready(result) = Pin::new(&mut this.io).poll_read(cx, buf) {
            return Poll::Ready(result);
        }
        // Waiting for the client: is it idle for too long?
        match this.info.activity.idle_deadline(this.idle_timeout) {
            Some(deadline) if deadline <= Instant::now() => {
                Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "idle connection closed")))
            }
            Some(deadline) => {
                this.timer.as_mut().reset(deadline.into());
                let _ = this.timer.as_mut().poll(cx);
                Poll::Pending
            }
            None => {
                this.timer.as_mut().reset((Instant::now() + this.idle_timeout).into());
                let _ = this.timer.as_mut().poll(cx);
                Poll::Pending
            }
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Conn<IO> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// Wraps accepted streams: counted, limited, idle-checked.
fn admit<IO>(
    accepted: io::Result<IO>,
    limits: &ConnectionLimits,
    open: &Arc<AtomicUsize>,
) -> Option<io::Result<Conn<IO>>> {
    let io = match accepted {
        Ok(io) => io,
        // A failed accept (EMFILE...) must not end the server.
        Err(error) => {
            tracing::warn!(%error, "accept failed");
            return None;
        }
    };
    if open.fetch_add(1, Ordering::SeqCst) >= limits.max_connections {
        open.fetch_sub(1, Ordering::SeqCst);
        tracing::warn!(max = limits.max_connections, "API connection refused: too many open");
        return None;
    }
    let activity = Arc::new(Activity { calls: AtomicUsize::new(0), quiet_since: Mutex::new(Instant::now()) });
    Some(Ok(Conn {
        io,
        info: ConnInfo { activity },
        idle_timeout: limits.idle_timeout,
        timer: Box::pin(tokio::time::sleep(limits.idle_timeout)),
        open: Arc::clone(open),
    }))
}

/// The Unix socket's connections, with the `:authority` fix for stock clients.
pub fn unix_incoming(
    listener: UnixListener,
    limits: ConnectionLimits,
) -> impl Stream<Item = io::Result<Conn<AuthorityFix<tokio::net::UnixStream>>>> {
    let open = Arc::new(AtomicUsize::new(0));
    tokio_stream::wrappers::UnixListenerStream::new(listener)
        .filter_map(move |accepted| admit(accepted.map(AuthorityFix::new), &limits, &open))
}

/// The TCP listener's connections (TLS is added by the server).
pub fn tcp_incoming(
    listener: TcpListener,
    limits: ConnectionLimits,
) -> impl Stream<Item = io::Result<Conn<tokio::net::TcpStream>>> {
    let open = Arc::new(AtomicUsize::new(0));
    tokio_stream::wrappers::TcpListenerStream::new(listener).filter_map(move |accepted| {
        let accepted = accepted.inspect(|stream| {
            let _ = stream.set_nodelay(true);
        });
        admit(accepted, &limits, &open)
    })
}

//! End to end: the API's transports. TCP only with mutual TLS (certificates made here
//! with rcgen): a client with a certificate from the configured CA is served; a plain
//! TCP client, a TLS client without a certificate, and one whose certificate comes from
//! another CA are refused. TCP without the TLS settings is refused at start-up. The
//! Unix socket is owner-only in a 0700 directory.

use std::{
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use modelwatch_tests::{Sensor, require_privileges, workspace_binary};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

struct Pki {
    ca: String,
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Pki {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("CA");
        Self { ca: issuer.pem(), issuer }
    }

    /// A certificate and key for `names`.
    fn leaf(&self, names: &[&str]) -> (String, String) {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
            .expect("params");
        params.distinguished_name.push(DnType::CommonName, names[0]);
        let cert = params.signed_by(&key, &self.issuer).expect("sign");
        (cert.pem(), key.serialize_pem())
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address").port()
}

async fn get_status(channel: Channel) -> Result<String, tonic::Status> {
    let mut client = proto::v1::sensor_client::SensorClient::new(channel);
    let response = client.get_status(proto::v1::GetStatusRequest {}).await?;
    Ok(response.into_inner().status.unwrap_or_default().instance)
}

/// A TLS channel trusting `ca`, presenting `identity` if any; the error if it cannot
/// connect or call.
async fn call_with_tls(port: u16, ca: &str, identity: Option<(&str, &str)>) -> Result<String, String> {
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca)).domain_name("localhost");
    if let Some((cert, key)) = identity {
        tls = tls.identity(Identity::from_pem(cert, key));
    }
    let endpoint = Endpoint::from_shared(format!("https://127.0.0.1:{port}"))
        .expect("endpoint")
        .tls_config(tls)
        .expect("tls")
        .timeout(Duration::from_secs(5));
    let channel = endpoint.connect().await.map_err(|e| format!("connect: {e:?}"))?;
    get_status(channel).await.map_err(|e| format!("call: {e:?}"))
}

#[test]
fn tcp_needs_a_client_certificate_from_the_configured_ca() {
    require_privileges!();
    let dir = tempfile::tempdir().expect("tempdir");
    let ours = Pki::new("modelwatch test CA");
    let theirs = Pki::new("another CA");
    let (server_cert, server_key) = ours.leaf(&["localhost", "127.0.0.1"]);
    let (client_cert, client_key) = ours.leaf(&["soc-collector"]);
    let (stranger_cert, stranger_key) = theirs.leaf(&["soc-collector"]);
    let port = free_port();
    let paths = [
        write(dir.path(), "server.pem", &server_cert),
        write(dir.path(), "server.key", &server_key),
        write(dir.path(), "clients-ca.pem", &ours.ca),
    ];
    let listen = format!("127.0.0.1:{port}");
    let args: Vec<String> = ["--tcp-listen".to_owned(), listen]
        .into_iter()
        .chain(
            ["--tls-cert", "--tls-key", "--client-ca"]
                .iter()
                .zip(&paths)
                .flat_map(|(flag, path)| [(*flag).to_owned(), path.display().to_string()]),
        )
        .collect();
    let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let sensor = Sensor::start(&arg_refs);
    let instance = sensor.status["instance"].as_str().expect("instance").to_owned();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let served = call_with_tls(port, &ours.ca, Some((&client_cert, &client_key))).await;
        assert_eq!(served.as_deref(), Ok(instance.as_str()), "a client of the configured CA is served");
        let stranger = call_with_tls(port, &ours.ca, Some((&stranger_cert, &stranger_key))).await;
        assert!(stranger.is_err(), "a certificate from another CA is refused: {stranger:?}");
        let anonymous = call_with_tls(port, &ours.ca, None).await;
        assert!(anonymous.is_err(), "a TLS client without a certificate is refused: {anonymous:?}");
        let plain = Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
            .expect("endpoint")
            .timeout(Duration::from_secs(5))
            .connect()
            .await;
        let plain = match plain {
            Ok(channel) => get_status(channel).await.map_err(|e| format!("{e:?}")),
            Err(error) => Err(format!("{error:?}")),
        };
        assert!(plain.is_err(), "plain TCP is refused: {plain:?}");
    });
}

#[test]
fn tcp_without_mutual_tls_is_refused_at_start_up() {
    require_privileges!();
    let dir = tempfile::tempdir().expect("tempdir");
    let output = Command::new(workspace_binary("modelwatch"))
        .args(["run", "--output", "none", "--tcp-listen", "127.0.0.1:1", "--socket"])
        .arg(dir.path().join("api/modelwatch.sock"))
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .output()
        .expect("run modelwatch");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("mutual TLS") && stderr.contains("tls_cert, tls_key, client_ca"), "{stderr}");
}

#[test]
fn the_socket_is_owner_only_in_a_directory_forced_to_0700() {
    require_privileges!();
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("run");
    std::fs::create_dir_all(&home).expect("home");
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let sensor = Sensor::start_in(&home, &[]);
    let mode = |p: &Path| std::fs::metadata(p).expect("metadata").permissions().mode() & 0o7777;
    assert_eq!(mode(&sensor.socket), 0o600);
    assert_eq!(mode(&home), 0o700, "the socket's directory is forced to 0700");
    drop(sensor);
    let shared = Command::new(workspace_binary("modelwatch"))
        .args(["run", "--output", "none", "--socket", "/tmp/modelwatch-test.sock", "--state-dir"])
        .arg(dir.path().join("state"))
        .output()
        .expect("run modelwatch");
    let stderr = String::from_utf8_lossy(&shared.stderr);
    assert_eq!(shared.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("shared directory"), "a socket in /tmp is refused: {stderr}");
}

#[test]
fn connections_past_the_limit_and_idle_ones_are_closed() {
    require_privileges!();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("modelwatch.toml");
    std::fs::write(&config, "[publish.api]\nmax_connections = 2\nidle_timeout_secs = 2\n").expect("config");
    let config = config.display().to_string();
    let sensor = Sensor::start(&["--config", &config]);
    let open = || std::os::unix::net::UnixStream::connect(&sensor.socket).expect("connect");
    // Closed by the server: a read returns end-of-file (or an error) instead of blocking.
    let closed_within = |stream: &mut std::os::unix::net::UnixStream, within: Duration| {
        use std::io::Read as _;
        stream.set_read_timeout(Some(within)).expect("timeout");
        let mut buffer = [0u8; 256];
        loop {
            match stream.read(&mut buffer) {
                Ok(0) => return true,
                // The server's HTTP/2 settings frame comes first.
                Ok(_) => {}
                Err(e)
                    if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) =>
                {
                    return false;
                }
                Err(_) => return true,
            }
        }
    };
    let mut first = open();
    let mut second = open();
    std::thread::sleep(Duration::from_millis(200));
    let mut third = open();
    assert!(closed_within(&mut third, Duration::from_secs(1)), "a third connection is closed at once");
    assert!(!closed_within(&mut first, Duration::from_millis(500)), "the first two stay open for now");
    let started = std::time::Instant::now();
    assert!(closed_within(&mut first, Duration::from_secs(5)), "an idle connection is closed");
    assert!(closed_within(&mut second, Duration::from_secs(5)));
    assert!(started.elapsed() < Duration::from_secs(4), "after about idle_timeout_secs");
}

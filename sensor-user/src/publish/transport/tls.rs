//! Mutual TLS for the TCP listener: the server's certificate and key, and the CA that
//! every client certificate must chain to (a client without one, or with one from
//! another CA, fails the handshake).

use std::path::{Path, PathBuf};

use thiserror::Error;
use tonic::transport::{Certificate, Identity, ServerTlsConfig};

use crate::publish::settings::ApiConfig;

#[derive(Debug, Error)]
pub enum TlsError {
    #[error("cannot read {what} {path}: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} {path} holds no PEM certificate or key")]
    NotPem { what: &'static str, path: PathBuf },
}

/// Largest certificate or key file read.
const MAX_PEM_BYTES: u64 = 1 << 20;

fn read_pem(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    let bytes = model_analysis::open::read_regular(path, MAX_PEM_BYTES).map_err(|source| TlsError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })?;
    if !bytes.windows(11).any(|w| w == b"-----BEGIN ") {
        return Err(TlsError::NotPem { what, path: path.to_path_buf() });
    }
    Ok(bytes)
}

/// The server's TLS settings, client certificates required.
///
/// # Errors
/// A file cannot be read or is not PEM.
pub fn server_config(api: &ApiConfig) -> Result<ServerTlsConfig, TlsError> {
    let cert = read_pem("the server certificate (publish.api.tls_cert)", &api.tls_cert)?;
    let key = read_pem("the server key (publish.api.tls_key)", &api.tls_key)?;
    let ca = read_pem("the client CA (publish.api.client_ca)", &api.client_ca)?;
    Ok(ServerTlsConfig::new()
        .identity(Identity::from_pem(cert, key))
        .client_ca_root(Certificate::from_pem(ca))
        .client_auth_optional(false))
}

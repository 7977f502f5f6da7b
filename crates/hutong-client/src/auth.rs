use std::path::{Path, PathBuf};

use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// Why a connection to the gateway could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A certificate or key file could not be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The address is not a URL, or the TLS settings are refused.
    #[error("{addr}: {source}")]
    Endpoint {
        /// The address given.
        addr: String,
        /// The cause.
        source: tonic::transport::Error,
    },
    /// A certificate without its key, or a key without its certificate.
    #[error("a client certificate needs both --cert and --key")]
    HalfIdentity,
    /// The gateway cannot be reached (refused, TLS handshake failed …).
    #[error("cannot reach the gateway at {addr}")]
    Connect {
        /// The address.
        addr: String,
        /// The cause (its sources say why).
        source: tonic::transport::Error,
    },
}

fn read(path: &Path) -> Result<Vec<u8>, ClientError> {
    std::fs::read(path).map_err(|source| ClientError::Read { path: path.to_owned(), source })
}

/// How a client reaches the gateway: CA, client certificate and key for
/// mTLS, or a bearer token.
#[derive(Debug, Clone, Default)]
pub struct ClientAuth {
    /// CA bundle (PEM) the gateway's certificate is checked against.
    pub ca: Option<PathBuf>,
    /// Client certificate (PEM).
    pub cert: Option<PathBuf>,
    /// Client key (PEM).
    pub key: Option<PathBuf>,
    /// Bearer token (token mode).
    pub token: Option<String>,
}

impl ClientAuth {
    /// The files of identity `name` in a directory made by `hutong certs`
    /// (`ca.pem`, `<name>.pem`, `<name>.key`); `None` presents no certificate.
    pub fn from_pki(dir: &Path, name: Option<&str>) -> Self {
        Self {
            ca: Some(dir.join("ca.pem")),
            cert: name.map(|n| dir.join(format!("{n}.pem"))),
            key: name.map(|n| dir.join(format!("{n}.key"))),
            token: None,
        }
    }

    /// A channel to `addr` (`https://…` for TLS, `http://…` for plaintext).
    pub async fn connect(&self, addr: &str) -> Result<Channel, ClientError> {
        self.endpoint(addr)?.connect().await.map_err(|source| ClientError::Connect { addr: addr.to_owned(), source })
    }

    /// The endpoint of `addr` with this identity, to tune before connecting.
    pub fn endpoint(&self, addr: &str) -> Result<Endpoint, ClientError> {
        let endpoint_error = |source| ClientError::Endpoint { addr: addr.to_owned(), source };
        let mut endpoint = Endpoint::from_shared(addr.to_owned()).map_err(endpoint_error)?;
        if addr.starts_with("https://") {
            let mut tls = ClientTlsConfig::new();
            if let Some(ca) = &self.ca {
                tls = tls.ca_certificate(Certificate::from_pem(read(ca)?));
            }
            match (&self.cert, &self.key) {
                (Some(c), Some(k)) => tls = tls.identity(Identity::from_pem(read(c)?, read(k)?)),
                (None, None) => {}
                _ => return Err(ClientError::HalfIdentity),
            }
            endpoint = endpoint.tls_config(tls).map_err(endpoint_error)?;
        }
        Ok(endpoint)
    }

    /// Adds the bearer token, if any, to a request.
    pub fn authorize<T>(&self, request: &mut tonic::Request<T>) {
        if let Some(token) = &self.token
            && let Ok(v) = format!("Bearer {token}").parse()
        {
            request.metadata_mut().insert("authorization", v);
        }
    }
}

//! TLS of the gRPC port: the server's rustls configuration (client
//! certificates checked against the deployment's CA and its revocation
//! lists), handshakes off the accept loop, and the client side the CLI and
//! tests share.

use std::{net::SocketAddr, path::Path, sync::Arc, time::Duration};

use rustls::{
    RootCertStore, ServerConfig,
    server::{WebPkiClientVerifier, danger::ClientCertVerifier},
};
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer, pem::PemObject};
use tokio::{net::TcpListener, sync::mpsc};
use tokio_rustls::{TlsAcceptor, server::TlsStream};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tracing::warn;

use crate::{AuthConfig, AuthMode};

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

fn pem_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(&read(path)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate in it", path.display()));
    }
    Ok(certs)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The client-certificate verifier: the CA bundle, the revocation lists,
/// anonymous clients let through the handshake (they reach only health and
/// are answered UNAUTHENTICATED elsewhere).
fn client_verifier(auth: &AuthConfig) -> Result<Arc<dyn ClientCertVerifier>, String> {
    let ca = auth.ca_file.as_deref().ok_or("auth.ca-file is required in mtls mode")?;
    let mut roots = RootCertStore::empty();
    for cert in pem_certs(ca)? {
        roots.add(cert).map_err(|e| format!("{}: {e}", ca.display()))?;
    }
    let mut crls = Vec::new();
    for path in &auth.crl_files {
        let before = crls.len();
        for crl in CertificateRevocationListDer::pem_slice_iter(&read(path)?) {
            crls.push(crl.map_err(|e| format!("{}: {e}", path.display()))?);
        }
        // An empty or DER file would otherwise turn revocation off without a word.
        if crls.len() == before {
            return Err(format!("{}: no PEM certificate revocation list in it", path.display()));
        }
    }
    let mut builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider()).allow_unauthenticated();
    if !crls.is_empty() {
        // A list past its nextUpdate is refused: a stalled refresh must not trust revoked certificates forever.
        builder = builder.with_crls(crls).only_check_end_entity_revocation().enforce_revocation_expiration();
    }
    builder.build().map_err(|e| format!("client verifier: {e}"))
}

/// The server's TLS configuration under `auth`, or `None` when the port
/// serves plaintext (token mode without a certificate).
pub(crate) fn server_config(auth: &AuthConfig) -> Result<Option<Arc<ServerConfig>>, String> {
    let (cert, key) = match (&auth.cert_file, &auth.key_file) {
        (Some(c), Some(k)) => (c, k),
        (None, None) if auth.mode == AuthMode::Token => return Ok(None),
        _ => return Err("auth.cert-file and auth.key-file are required (the gateway's TLS identity)".to_owned()),
    };
    let chain = pem_certs(cert)?;
    let key = PrivateKeyDer::from_pem_slice(&read(key)?).map_err(|e| format!("{}: {e}", key.display()))?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = match auth.mode {
        AuthMode::Mtls => builder.with_client_cert_verifier(client_verifier(auth)?),
        AuthMode::Token => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(chain, key).map_err(|e| format!("{}: {e}", cert.display()))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Some(Arc::new(config)))
}

/// A refused handshake: the peer and why.
pub(crate) type OnRefused = Arc<dyn Fn(SocketAddr, String) + Send + Sync>;

/// TLS connections accepted on `listener`: every handshake runs in its own
/// task (a slow or hostile client cannot hold up the others) and is bounded
/// by `timeout`; refusals are reported to `on_refused`. The config is read
/// anew for each connection, so a reload (new CRL) applies to the next one.
pub(crate) fn incoming(
    listener: TcpListener,
    config: Arc<arc_swap::ArcSwap<ServerConfig>>,
    timeout: Duration,
    on_refused: OnRefused,
) -> (ReceiverStream<std::io::Result<TlsStream<tokio::net::TcpStream>>>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(64);
    let task = tokio::spawn(async move {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let acceptor = TlsAcceptor::from(config.load_full());
            let (tx, on_refused) = (tx.clone(), Arc::clone(&on_refused));
            tokio::spawn(async move {
                match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => {
                        let _ = tx.send(Ok(tls)).await;
                    }
                    Ok(Err(e)) => on_refused(peer, e.to_string()),
                    Err(_) => on_refused(peer, format!("handshake took longer than {timeout:?}")),
                }
            });
        }
    });
    (ReceiverStream::new(rx), task)
}

/// How a client reaches the gateway: CA, client certificate and key for
/// mTLS, or a bearer token.
#[derive(Debug, Clone, Default)]
pub struct ClientAuth {
    /// CA bundle (PEM) the gateway's certificate is checked against.
    pub ca: Option<std::path::PathBuf>,
    /// Client certificate (PEM).
    pub cert: Option<std::path::PathBuf>,
    /// Client key (PEM).
    pub key: Option<std::path::PathBuf>,
    /// Bearer token (token mode).
    pub token: Option<String>,
}

impl ClientAuth {
    /// The files of identity `name` in a directory made by `hutong certs`.
    pub fn from_pki(dir: &Path, name: Option<&str>) -> Self {
        Self {
            ca: Some(dir.join("ca.pem")),
            cert: name.map(|n| dir.join(format!("{n}.pem"))),
            key: name.map(|n| dir.join(format!("{n}.key"))),
            token: None,
        }
    }

    /// A channel to `addr` (`https://…` for TLS, `http://…` for plaintext).
    pub async fn connect(&self, addr: &str) -> Result<Channel, String> {
        self.endpoint(addr)?.connect().await.map_err(|e| format!("{addr}: {}", error_chain(&e)))
    }

    /// The endpoint of `addr` with this identity, to tune before connecting.
    pub fn endpoint(&self, addr: &str) -> Result<Endpoint, String> {
        let mut endpoint = Endpoint::from_shared(addr.to_owned()).map_err(|e| format!("{addr}: {e}"))?;
        if addr.starts_with("https://") {
            let mut tls = ClientTlsConfig::new();
            if let Some(ca) = &self.ca {
                tls = tls.ca_certificate(Certificate::from_pem(read(ca)?));
            }
            match (&self.cert, &self.key) {
                (Some(c), Some(k)) => tls = tls.identity(Identity::from_pem(read(c)?, read(k)?)),
                (None, None) => {}
                _ => return Err("a client certificate needs both --cert and --key".to_owned()),
            }
            endpoint = endpoint.tls_config(tls).map_err(|e| format!("{addr}: {e}"))?;
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

/// An error with its sources, `a: b: c`.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

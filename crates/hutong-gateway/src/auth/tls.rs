//! TLS of the gRPC port: the server's rustls configuration (client
//! certificates checked against the deployment's CA and its revocation
//! lists), and handshakes off the accept loop. (The client side is
//! `hutong-client`.)

use std::{net::SocketAddr, path::Path, sync::Arc, time::Duration};

use rustls::{
    RootCertStore, ServerConfig,
    server::{WebPkiClientVerifier, danger::ClientCertVerifier},
};
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer, pem::PemObject};
use tokio::{net::TcpListener, sync::mpsc};
use tokio_rustls::{TlsAcceptor, server::TlsStream};
use tokio_stream::wrappers::ReceiverStream;
use tracing::warn;

use crate::{AuthConfig, AuthMode, auth::SecurityError};

fn read(path: &Path) -> Result<Vec<u8>, SecurityError> {
    std::fs::read(path).map_err(|source| SecurityError::Read { path: path.to_owned(), source })
}

fn pem(path: &Path, message: impl std::fmt::Display) -> SecurityError {
    SecurityError::Pem { path: path.to_owned(), message: message.to_string() }
}

fn pem_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, SecurityError> {
    let certs =
        CertificateDer::pem_slice_iter(&read(path)?).collect::<Result<Vec<_>, _>>().map_err(|e| pem(path, e))?;
    if certs.is_empty() {
        return Err(pem(path, "no certificate in it"));
    }
    Ok(certs)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The client-certificate verifier: the CA bundle, the revocation lists,
/// anonymous clients let through the handshake (they reach only health and
/// are answered UNAUTHENTICATED elsewhere).
fn client_verifier(auth: &AuthConfig) -> Result<Arc<dyn ClientCertVerifier>, SecurityError> {
    let ca = auth.ca_file.as_deref().ok_or(SecurityError::Missing("auth.ca-file"))?;
    let mut roots = RootCertStore::empty();
    for cert in pem_certs(ca)? {
        roots.add(cert).map_err(|e| pem(ca, e))?;
    }
    let mut crls = Vec::new();
    for path in &auth.crl_files {
        let before = crls.len();
        for crl in CertificateRevocationListDer::pem_slice_iter(&read(path)?) {
            crls.push(crl.map_err(|e| pem(path, e))?);
        }
        // An empty or DER file would otherwise turn revocation off without a word.
        if crls.len() == before {
            return Err(pem(path, "no PEM certificate revocation list in it"));
        }
    }
    let mut builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider()).allow_unauthenticated();
    if !crls.is_empty() {
        // A list past its nextUpdate is refused: a stalled refresh must not trust revoked certificates forever.
        builder = builder.with_crls(crls).only_check_end_entity_revocation().enforce_revocation_expiration();
    }
    Ok(builder.build()?)
}

/// The server's TLS configuration under `auth`, or `None` when the port
/// serves plaintext (token mode without a certificate).
pub(crate) fn server_config(auth: &AuthConfig) -> Result<Option<Arc<ServerConfig>>, SecurityError> {
    let (cert, key) = match (&auth.cert_file, &auth.key_file) {
        (Some(c), Some(k)) => (c, k),
        (None, None) if auth.mode == AuthMode::Token => return Ok(None),
        _ => return Err(SecurityError::Missing("auth.cert-file and auth.key-file")),
    };
    let chain = pem_certs(cert)?;
    let key = PrivateKeyDer::from_pem_slice(&read(key)?).map_err(|e| pem(key, e))?;
    let builder = ServerConfig::builder_with_provider(provider()).with_safe_default_protocol_versions()?;
    let builder = match auth.mode {
        AuthMode::Mtls => builder.with_client_cert_verifier(client_verifier(auth)?),
        AuthMode::Token => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(chain, key).map_err(|e| pem(cert, e))?;
    // gRPC on HTTP/2; `POST /v1/submit` also over HTTP/1.1 for clients without h2.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
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

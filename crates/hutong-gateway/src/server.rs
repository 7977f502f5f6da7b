use std::{future::Future, sync::Arc, time::Duration};

use arc_swap::ArcSwap;

use hutong_adapter::{AdapterError, PseudonymKey};
use hutong_bus::{BusError, KafkaPublisher, Publisher, Spool, ensure_topics};
use hutong_proto::v1::{admin_server::AdminServer, ingest_server::IngestServer};
use hutong_standard::StandardError;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{codec::CompressionEncoding, service::interceptor::InterceptedService, transport::Server};
use tracing::{info, warn};

use crate::{
    AdminService, AuthMode, GatewayConfig, IngestService, Metrics, Policy, PseudonymConfig, Reloader, audit::Auditor,
    security::Guard,
};

/// Why the gateway could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The standard did not load.
    #[error("standard")]
    Standard(#[from] StandardError),
    /// An adapter did not load.
    #[error("adapter")]
    Adapter(#[from] AdapterError),
    /// Kafka could not be set up.
    #[error("kafka")]
    Bus(#[from] BusError),
    /// The schema registry is unreadable, or the standard is not registered.
    #[error("registry: {0}")]
    Registry(String),
    /// The pseudonym key is missing or too short.
    #[error("pseudonym key: {0}")]
    Key(String),
    /// The listener or the server failed.
    #[error("server: {0}")]
    Transport(String),
    /// TLS, the policy file or the audit log could not be set up.
    #[error("security: {0}")]
    Security(String),
}

/// Who may call, over which transport: what `serve_on` needs besides the pipeline.
#[derive(Clone)]
pub struct Security {
    /// Authentication, authorisation and the audit trail.
    pub guard: Arc<Guard>,
    /// The TLS configuration (swapped on SIGHUP); `None` serves plaintext (token mode only).
    pub tls: Option<Arc<ArcSwap<rustls::ServerConfig>>>,
    /// Longest a TLS handshake may take.
    pub handshake_timeout: Duration,
}

impl Security {
    /// Loads the policy, the TLS files and opens the audit log of `config`;
    /// audit entries are copied to the audit topic through `publisher`.
    pub fn load(
        config: &GatewayConfig,
        publisher: Option<Arc<dyn Publisher>>,
        metrics: &Metrics,
    ) -> Result<Self, GatewayError> {
        let sec = |e: String| GatewayError::Security(e);
        let policy = Policy::load(&config.auth.policy_file).map_err(sec)?;
        let log = hutong_audit::AuditLog::open(&config.audit.dir, config.audit.retention_days)
            .map_err(|e| sec(format!("audit log: {e}")))?;
        let topic = publisher.filter(|_| config.audit.publish).map(|p| (config.kafka.topics().audit(), p));
        let auditor = Arc::new(Auditor::new(log, topic, metrics));
        let tls = crate::tls::server_config(&config.auth).map_err(sec)?.map(|c| Arc::new(ArcSwap::new(c)));
        if config.auth.mode == AuthMode::Token {
            let banner = "TOKEN MODE: callers are identified by static bearer tokens, not certificates. \
                          For development and trials only; never in production.";
            eprintln!("\n!!! {banner}{} !!!\n", if tls.is_none() { " The port is PLAINTEXT." } else { "" });
            warn!(plaintext = tls.is_none(), "{banner}");
        }
        Ok(Self {
            guard: Arc::new(Guard::new(config.auth.mode, policy, auditor)),
            tls,
            handshake_timeout: Duration::from_millis(config.auth.handshake_timeout_ms),
        })
    }

    /// Plaintext with development tokens and no audit file: in-process tests only.
    pub fn plaintext_tokens(policy: Policy) -> Self {
        Self {
            guard: Arc::new(Guard::new(AuthMode::Token, policy, Arc::new(Auditor::disabled()))),
            tls: None,
            handshake_timeout: Duration::from_secs(10),
        }
    }

    /// Re-reads the policy file and the TLS files (new CRLs); keeps the
    /// working ones when anything fails to load.
    pub fn reload(&self, config: &GatewayConfig) -> Result<(), String> {
        let policy = Policy::load(&config.auth.policy_file)?;
        if let Some(tls) = &self.tls {
            let fresh = crate::tls::server_config(&config.auth)?.ok_or("TLS cannot be turned off by a reload")?;
            tls.store(fresh);
        }
        self.guard.set_policy(policy);
        Ok(())
    }
}

impl PseudonymConfig {
    /// Reads the key from `key-file`, else from the `key-env` variable.
    pub fn load_key(&self) -> Result<PseudonymKey, GatewayError> {
        let bytes = match &self.key_file {
            Some(path) => std::fs::read(path)
                .map_err(|e| GatewayError::Key(format!("{}: {e}", path.display())))?
                .trim_ascii()
                .to_vec(),
            None => std::env::var(&self.key_env)
                .map_err(|_| {
                    GatewayError::Key(format!("set pseudonym.key-file or the {} environment variable", self.key_env))
                })?
                .into_bytes(),
        };
        PseudonymKey::new(bytes)
            .ok_or_else(|| GatewayError::Key(format!("must be at least {} bytes", PseudonymKey::MIN_LEN)))
    }
}

/// Runs the gateway of `config` until `shutdown` resolves, then finishes the
/// requests in flight and flushes the producer.
pub async fn serve(config: GatewayConfig, shutdown: impl Future<Output = ()> + Send) -> Result<(), GatewayError> {
    let key = config.pseudonym.load_key()?;
    let reloader = Arc::new(Reloader::new(config.schemas_dir.clone(), key, config.pipeline_settings())?);
    let pipeline = reloader.current();
    info!(
        entities = pipeline.standard().entities().count(),
        adapters = pipeline.adapters().iter().count(),
        schemas = %config.schemas_dir.display(),
        "standard and adapters loaded"
    );
    if config.kafka.create_topics {
        let mut topics = pipeline.topics();
        topics.push(config.kafka.topics().audit());
        match ensure_topics(&config.kafka, &topics).await {
            Ok(()) => {}
            // With store and forward on, the gateway starts while Kafka is away (records are
            // spooled) and creates the topics once Kafka answers.
            Err(e) if config.spool.enabled => {
                warn!(error = %e, "kafka unreachable at start: serving with the spool, creating topics later");
                let kafka = config.kafka.clone();
                tokio::spawn(async move {
                    loop {
                        tokio::time::sleep(Duration::from_secs(2)).await;
                        if ensure_topics(&kafka, &topics).await.is_ok() {
                            info!("topics created after kafka returned");
                            break;
                        }
                    }
                });
            }
            Err(e) => return Err(e.into()),
        }
    }
    let kafka = config.kafka.clone();
    let _watch = reloader.watch(move |p| {
        if kafka.create_topics {
            let kafka = kafka.clone();
            tokio::spawn(async move {
                if let Err(e) = ensure_topics(&kafka, &p.topics()).await {
                    warn!(error = %e, "creating topics of the reloaded standard");
                }
            });
        }
    })?;
    let producer = KafkaPublisher::new(&config.kafka)?;
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| GatewayError::Transport(format!("binding {}: {e}", config.listen)))?;
    info!(addr = %config.listen, brokers = %config.kafka.bootstrap_servers, "gateway listening");
    let publisher: Arc<dyn Publisher> = Arc::new(producer.clone());
    let metrics = Arc::new(Metrics::default());
    let security = Security::load(&config, Some(Arc::clone(&publisher)), &metrics)?;
    let hup_task = reload_security_on_hangup(security.clone(), config.clone());
    let spool = if config.spool.enabled {
        let s = Arc::new(
            Spool::open(&config.spool.path, config.spool.max_records)
                .map_err(|e| GatewayError::Transport(format!("{}: {e}", config.spool.path.display())))?,
        );
        info!(path = %config.spool.path.display(), waiting = s.len(), "store and forward on");
        Some(s)
    } else {
        None
    };
    let replay_task = spool.clone().map(|s| {
        let publisher = Arc::clone(&publisher);
        let every = Duration::from_millis(config.spool.replay_interval_ms);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                if !s.is_empty() {
                    match s.replay(publisher.as_ref()).await {
                        Ok(n) if n > 0 => info!(replayed = n, "spool drained into kafka"),
                        _ => {}
                    }
                }
            }
        })
    });
    let registry_task = if config.registry.listen.is_empty() {
        None
    } else {
        let l = TcpListener::bind(&config.registry.listen)
            .await
            .map_err(|e| GatewayError::Transport(format!("binding {}: {e}", config.registry.listen)))?;
        info!(addr = %config.registry.listen, "schema registry listening");
        let (m, r, p) = (Arc::clone(&metrics), Arc::clone(&reloader), producer.clone());
        let sp = spool.clone();
        let refresh: Arc<dyn Fn(&Metrics) + Send + Sync> = Arc::new(move |m: &Metrics| {
            m.spool_depth.set(sp.as_ref().map_or(0, |s| s.len() as i64));
            m.producer_queue.set(p.queue_len());
            let status = r.status();
            m.reload_generation.set(status.generation);
            m.reload_failed.set(i64::from(status.last_error.is_some()));
        });
        let app = crate::registry_router(Arc::clone(&reloader)).merge(crate::metrics_router(m, refresh));
        Some(tokio::spawn(async move { axum::serve(l, app).await }))
    };
    let guard = Arc::clone(&security.guard);
    serve_on(listener, reloader, publisher, metrics, spool, security, &config, shutdown).await?;
    hup_task.abort();
    guard.auditor().sync();
    if let Some(t) = replay_task {
        t.abort();
    }
    if let Some(t) = registry_task {
        t.abort();
    }
    info!("flushing producer");
    if let Err(e) = producer.flush(Duration::from_millis(config.kafka.message_timeout_ms)) {
        warn!(error = %e, "producer flush incomplete");
    }
    Ok(())
}

/// On SIGHUP, re-reads the policy and the TLS files (CRLs).
fn reload_security_on_hangup(security: Security, config: GatewayConfig) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
                return;
            };
            while hup.recv().await.is_some() {
                match security.reload(&config) {
                    Ok(()) => info!("SIGHUP: policy and TLS files reloaded"),
                    Err(e) => warn!(error = %e, "SIGHUP: policy or TLS files refused; keeping the working ones"),
                }
            }
        }
    })
}

/// Serves the ingest service (with health and reflection) on `listener`.
#[allow(clippy::too_many_arguments)]
pub async fn serve_on(
    listener: TcpListener,
    pipelines: Arc<Reloader>,
    publisher: Arc<dyn Publisher>,
    metrics: Arc<Metrics>,
    spool: Option<Arc<Spool>>,
    security: Security,
    config: &GatewayConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), GatewayError> {
    let transport = |e: &dyn std::fmt::Display| GatewayError::Transport(e.to_string());
    let mut service = IngestService::new(
        Arc::clone(&pipelines),
        publisher,
        config.limits.max_records_per_batch,
        config.delivery,
        metrics,
        Arc::clone(&security.guard),
    );
    if let Some(s) = spool {
        service = service.with_spool(s);
    }
    let ingest = IngestServer::new(service)
        .max_decoding_message_size(config.limits.max_message_bytes)
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip);
    let admin = AdminServer::new(AdminService::new(Arc::clone(&pipelines), Arc::clone(&security.guard)));
    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter.set_serving::<IngestServer<IngestService>>().await;
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(hutong_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| transport(&e))?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(hutong_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .map_err(|e| transport(&e))?;
    // Reflection describes every service (admin included): identified callers only.
    let reflection_guard =
        |guard: Arc<Guard>| move |req: tonic::Request<()>| guard.authenticated(&req, "ServerReflection").map(|()| req);
    let reflection_v1 = InterceptedService::new(reflection_v1, reflection_guard(Arc::clone(&security.guard)));
    let reflection_v1alpha = InterceptedService::new(reflection_v1alpha, reflection_guard(Arc::clone(&security.guard)));
    let router = Server::builder()
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(ingest)
        .add_service(admin);
    match security.tls {
        Some(tls) => {
            let auditor = Arc::clone(security.guard.auditor());
            let on_refused: crate::tls::OnRefused = Arc::new(move |peer, reason| {
                warn!(%peer, reason, "TLS handshake refused");
                auditor.record(serde_json::json!({
                    "type": "denied", "peer": peer.to_string(), "action": "connect",
                    "code": "Unauthenticated", "reason": format!("TLS handshake refused: {reason}"),
                }));
            });
            let (incoming, accept_task) = crate::tls::incoming(listener, tls, security.handshake_timeout, on_refused);
            let served = router.serve_with_incoming_shutdown(incoming, shutdown).await;
            accept_task.abort();
            served.map_err(|e| transport(&e))
        }
        None => {
            router.serve_with_incoming_shutdown(incoming_nodelay(listener), shutdown).await.map_err(|e| transport(&e))
        }
    }
}

/// Accepted connections with Nagle's algorithm off: with it, every small
/// gRPC answer waited for the client's delayed ACK (~40 ms; measured as a
/// ~52 ms p50 floor on unary calls).
fn incoming_nodelay(
    listener: TcpListener,
) -> impl futures::Stream<Item = std::io::Result<tokio::net::TcpStream>> + Send {
    use futures::StreamExt as _;
    TcpListenerStream::new(listener).map(|conn| {
        if let Ok(stream) = &conn {
            let _ = stream.set_nodelay(true);
        }
        conn
    })
}

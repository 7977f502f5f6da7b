//! Starting and stopping the gateway: load the configuration's pieces, create
//! the topics, serve the gRPC port and the registry's HTTP port, replay the
//! spool, reload on SIGHUP, and on SIGTERM finish what is in flight.

use std::{future::Future, sync::Arc, time::Duration};

use hutong_bus::{BusError, KafkaPublisher, Publisher, Spool, ensure_topics};
use hutong_pipeline::{Reloader, topic_plan};
use hutong_proto::v1::{admin_server::AdminServer, ingest_server::IngestServer};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{codec::CompressionEncoding, service::interceptor::InterceptedService, transport::Server};
use tracing::{debug, error, info, warn};

use crate::{AdminService, GatewayConfig, GatewayError, Guard, IngestService, Metrics, Security, audit::AuditEvent};

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
    let plan = topic_plan(pipeline.standard(), &config.kafka, &config.privacy, config.file.derived_topics())?;
    // Set when the topics, seen to after Kafka returned, cannot be used as declared: the gateway
    // then stops as it would have at start.
    let fatal: Arc<std::sync::Mutex<Option<BusError>>> = Arc::default();
    let (fatal_tx, mut fatal_rx) = tokio::sync::mpsc::channel::<()>(1);
    match ensure_topics(&config.kafka, &plan).await {
        Ok(_) => {}
        // With store and forward on, the gateway starts while Kafka is away (records are
        // spooled) and sees to the topics once Kafka answers.
        Err(e @ BusError::Unavailable { .. }) if config.spool.is_some() => {
            warn!(error = %e, "kafka unreachable at start: serving with the spool, seeing to the topics later");
            let (kafka, fatal, plan) = (config.kafka.clone(), Arc::clone(&fatal), plan.clone());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    match ensure_topics(&kafka, &plan).await {
                        Ok(_) => break info!("topics ready after kafka returned"),
                        Err(e @ BusError::Unavailable { .. }) => debug!(error = %e, "kafka still unreachable"),
                        Err(e) => {
                            error!(error = %e, "the topics cannot be used as declared: stopping the gateway");
                            *fatal.lock().expect("fatal lock") = Some(e);
                            let _ = fatal_tx.send(()).await;
                            break;
                        }
                    }
                }
            });
        }
        Err(e) => return Err(e.into()),
    }
    let (kafka, privacy, profiles) = (config.kafka.clone(), config.privacy.clone(), config.file.derived_topics());
    let _watch = reloader.watch(move |p| {
        let kafka = kafka.clone();
        let plan = topic_plan(p.standard(), &kafka, &privacy, profiles.clone());
        tokio::spawn(async move {
            let result = match plan {
                Ok(plan) => ensure_topics(&kafka, &plan).await.map(drop).map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            if let Err(e) = result {
                warn!(error = %e, "the topics of the reloaded standard");
            }
        });
    })?;
    let producer = KafkaPublisher::new(&config.kafka)?;
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| GatewayError::Bind { addr: config.listen.to_string(), source })?;
    info!(addr = %config.listen, brokers = %config.kafka.bootstrap_servers, "gateway listening");
    let publisher: Arc<dyn Publisher> = Arc::new(producer.clone());
    let metrics = Arc::new(Metrics::default());
    let security = Security::load(&config, Some(Arc::clone(&publisher)), &metrics)?;
    let hup_task = reload_security_on_hangup(security.clone(), config.clone());
    let spool = match &config.spool {
        Some(c) => {
            let s = Arc::new(Spool::open(&c.path, c.max_records)?);
            // Messages an earlier version spooled for topics this one no longer writes (the v1
            // entity topics, keyed by the entity key alone) would block the replay for ever.
            if !s.is_empty() {
                let stale: Vec<String> = s
                    .topics()?
                    .into_iter()
                    .filter(|(t, _)| plan.get(t).is_none())
                    .map(|(t, n)| format!("{t}: {n}"))
                    .collect();
                if !stale.is_empty() {
                    return Err(GatewayError::StaleSpool { path: c.path.clone(), topics: stale.join(", ") });
                }
            }
            info!(path = %c.path.display(), waiting = s.len(), "store and forward on");
            Some((s, Duration::from_millis(c.replay_interval_ms)))
        }
        None => None,
    };
    let replay_task = spool.clone().map(|(s, every)| {
        let publisher = Arc::clone(&publisher);
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
    let spool = spool.map(|(s, _)| s);
    let registry_task = if let Some(addr) = config.registry_listen {
        let l =
            TcpListener::bind(addr).await.map_err(|source| GatewayError::Bind { addr: addr.to_string(), source })?;
        info!(%addr, "schema registry listening");
        let (m, r, p) = (Arc::clone(&metrics), Arc::clone(&reloader), producer.clone());
        let sp = spool.clone();
        let refresh: crate::metrics::BeforeScrape = Arc::new(move |m: &Metrics| {
            m.spool_depth.set(sp.as_ref().map_or(0, |s| s.len() as i64));
            m.producer_queue.set(p.queue_len());
            let status = r.status();
            m.reload_generation.set(status.generation);
            m.reload_failed.set(i64::from(status.last_error.is_some()));
        });
        let current = reloader.current();
        let plan = hutong_pipeline::topic_plan(
            current.standard(),
            &config.kafka,
            &config.privacy,
            config.file.derived_topics(),
        )?;
        let app = crate::registry_router(Arc::clone(&reloader))
            .merge(crate::catalog_router(Arc::clone(&reloader), Arc::new(plan)))
            .merge(crate::metrics_router(m, refresh));
        Some(tokio::spawn(async move { axum::serve(l, app).await }))
    } else {
        None
    };
    let guard = Arc::clone(&security.guard);
    let audit_sync = guard.auditor().sync_every(crate::audit::SYNC_EVERY);
    let stop = async {
        tokio::select! {
            () = shutdown => {}
            Some(()) = fatal_rx.recv() => {}
        }
    };
    serve_on(listener, reloader, publisher, metrics, spool, security, &config, stop).await?;
    hup_task.abort();
    audit_sync.abort();
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
    match fatal.lock().expect("fatal lock").take() {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
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

/// Serves the ingest and admin services (with health and reflection) on `listener`.
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
    let http_submit = crate::ingest::http_router(service.clone(), config.limits.max_message_bytes);
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
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(hutong_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;
    // Reflection describes every service (admin included): identified callers only.
    let reflection_guard =
        |guard: Arc<Guard>| move |req: tonic::Request<()>| guard.authenticated(&req, "ServerReflection").map(|()| req);
    let reflection_v1 = InterceptedService::new(reflection_v1, reflection_guard(Arc::clone(&security.guard)));
    let reflection_v1alpha = InterceptedService::new(reflection_v1alpha, reflection_guard(Arc::clone(&security.guard)));
    let routes = tonic::service::Routes::new(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(ingest)
        .add_service(admin)
        .into_axum_router()
        .merge(http_submit);
    // HTTP/1.1 too, for `POST /v1/submit` (gRPC stays on HTTP/2).
    let router = Server::builder().accept_http1(true).add_routes(routes.into());
    serve_router(router, listener, &security, shutdown).await
}

/// Serves `router` on `listener` behind `security`: TLS (mTLS) when configured, a refused
/// handshake audited; plaintext otherwise (token mode). What every Hutong gRPC port runs on.
pub async fn serve_router(
    router: tonic::transport::server::Router,
    listener: TcpListener,
    security: &Security,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), GatewayError> {
    match security.tls.clone() {
        Some(tls) => {
            let auditor = Arc::clone(security.guard.auditor());
            let on_refused: crate::auth::tls::OnRefused = Arc::new(move |peer, reason| {
                warn!(%peer, reason, "TLS handshake refused");
                auditor.record(AuditEvent::Denied {
                    principal: None,
                    role: None,
                    peer: Some(peer.to_string()),
                    action: "connect".to_owned(),
                    code: "Unauthenticated".to_owned(),
                    reason: format!("TLS handshake refused: {reason}"),
                });
            });
            let (incoming, accept_task) =
                crate::auth::tls::incoming(listener, tls, security.handshake_timeout, on_refused);
            let served = router.serve_with_incoming_shutdown(incoming, shutdown).await;
            accept_task.abort();
            Ok(served?)
        }
        None => Ok(router.serve_with_incoming_shutdown(incoming_nodelay(listener), shutdown).await?),
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

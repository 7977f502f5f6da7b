//! 一人一档: the shared profile service. A Kafka consumer group over the entity topics merges
//! every department's facts about a person, household, building, grid or organisation into one
//! profile ([`merge`]) under rules that are data ([`rules`]), keeps them in a store ([`store`]:
//! SQLite by default, PostgreSQL in production), publishes each change to
//! `<prefix>.<entity>.profile.v1`, and answers `hutong.v1.Profiles` queries ([`service`]) behind
//! the gateway's mTLS identities, policy and audit trail.
#![warn(missing_docs)]

pub mod access;
pub mod access_service;
pub mod bench;
pub mod console;
pub mod consumer;
pub mod governance;
pub mod governance_service;
pub mod merge;
pub mod rules;
pub mod service;
pub mod store;

use std::{
    path::PathBuf,
    sync::{Arc, atomic::AtomicBool},
    time::Duration,
};

use hutong_adapter::Adapters;
use hutong_config::GatewayConfig;
use hutong_gateway::{Metrics, Security};
use hutong_proto::v1::profiles_server::ProfilesServer;
use hutong_standard::Standard;
use tracing::{error, info};

pub use consumer::{ConsumerSettings, Intake, Outlet, Status};
pub use merge::{Fact, Profile, Source, merge};
pub use rules::{EntityRules, Rules, RulesError};
pub use store::{Store, StoreError, StoreUrl};

/// Why the profile service cannot run.
#[derive(Debug, thiserror::Error)]
pub enum ProfilesError {
    /// The configuration does not fit.
    #[error("configuration: {0}")]
    Config(String),
    /// The standard or the adapters did not load.
    #[error("{0}")]
    Schemas(String),
    /// The merge rules.
    #[error(transparent)]
    Rules(#[from] RulesError),
    /// The store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Kafka.
    #[error("kafka: {0}")]
    Kafka(String),
    /// The gRPC port.
    #[error("{0}")]
    Serve(String),
}

/// Everything loaded from `schemas/`: the standard, the adapters and the merge rules, checked
/// against each other.
pub fn load_rules(
    schemas_dir: &std::path::Path,
    rules_dir: Option<&std::path::Path>,
) -> Result<(Standard, Rules), ProfilesError> {
    let standard = Standard::load(schemas_dir).map_err(|e| ProfilesError::Schemas(e.to_string()))?;
    let adapters = Adapters::load(&schemas_dir.join("departments"), &standard)
        .map_err(|e| ProfilesError::Schemas(e.to_string()))?;
    let dir = rules_dir.map_or_else(|| schemas_dir.join("profiles"), PathBuf::from);
    let rules = Rules::load(&dir, &standard, &adapters)?;
    Ok((standard, rules))
}

/// The entities the governance consumers read besides the profiles'.
pub const GOVERNED: [&str; 3] = ["event", "service_request", "service_resource"];

/// The governance rules and calendar of `config` (`[governance]`), checked against
/// `standard`, with its clock.
pub fn load_governance(
    config: &GatewayConfig,
    standard: &Standard,
) -> Result<governance::GovernanceRuntime, ProfilesError> {
    let g = &config.file.governance;
    let rules_dir = g.rules_dir.clone().unwrap_or_else(|| config.schemas_dir.join("governance"));
    let calendar_dir = g.calendar_dir.clone().unwrap_or_else(|| config.schemas_dir.join("calendar/cn"));
    let rules = hutong_governance::Governance::load(&rules_dir, &calendar_dir, standard)
        .map_err(|e| ProfilesError::Schemas(e.to_string()))?;
    let clock = clock_of(config)?;
    let now = clock.now();
    let year = chrono::Datelike::year(&now);
    if !rules.calendar.covers(year) {
        tracing::warn!(
            year,
            "NO WORKING-DAY CALENDAR for the current year: deadlines are counted on weekdays alone and marked so; add schemas/calendar/cn/{year}.toml"
        );
    }
    Ok(governance::GovernanceRuntime { rules, clock })
}

/// The clock of `config`: `[governance] now` when set (replays and tests), else the system's.
fn clock_of(config: &GatewayConfig) -> Result<governance::Clock, ProfilesError> {
    Ok(match &config.file.governance.now {
        Some(t) => governance::Clock::Fixed(
            chrono::DateTime::parse_from_rfc3339(t)
                .map_err(|e| ProfilesError::Config(format!("governance.now: {e}")))?,
        ),
        None => governance::Clock::System,
    })
}

/// The catalogue of this deployment with the working-day calendar and the clock the access
/// rules are applied with.
pub fn load_sharing(
    config: &GatewayConfig,
    standard: &Standard,
    plan: &hutong_bus::TopicPlan,
) -> Result<access_service::Sharing, ProfilesError> {
    let adapters = Adapters::load(&config.schemas_dir.join("departments"), standard)
        .map_err(|e| ProfilesError::Schemas(e.to_string()))?;
    let calendar_dir =
        config.file.governance.calendar_dir.clone().unwrap_or_else(|| config.schemas_dir.join("calendar/cn"));
    let calendar =
        hutong_governance::Calendar::load(&calendar_dir).map_err(|e| ProfilesError::Schemas(e.to_string()))?;
    Ok(access_service::Sharing {
        catalog: hutong_sharing::Catalog::build(standard, &adapters, plan),
        calendar: Arc::new(calendar),
        clock: clock_of(config)?,
        limits: access_service::Limits::new(
            config.file.sharing.rate_per_second,
            config.file.sharing.burst,
            config.file.sharing.profiles_per_hour,
        ),
    })
}

/// Runs the profile service of `config` until `shutdown` resolves: the consumer on a thread of
/// its own, the gRPC port (`profiles.listen`) with health, which says not-serving while the
/// store is away.
pub async fn serve(config: GatewayConfig, shutdown: impl Future<Output = ()> + Send) -> Result<(), ProfilesError> {
    let p = config.file.profiles.clone();
    let (standard, rules) = load_rules(&config.schemas_dir, p.rules_dir.as_deref())?;
    let url: StoreUrl = p.store.parse()?;
    let g = config.file.governance.clone();
    let governance = if g.enabled { Some(Arc::new(load_governance(&config, &standard)?)) } else { None };
    let mut entities = p.entities.clone();
    if governance.is_some() {
        entities.extend(GOVERNED.iter().map(|e| (*e).to_owned()).filter(|e| !p.entities.contains(e)));
    }
    let mut intake = Intake::new(&standard, &config.kafka, &config.privacy, &entities)?;
    if governance.is_some() {
        intake = intake.with_rejects(config.kafka.topics().dlq());
    }
    let registry =
        || hutong_registry::Registry::load(&config.schemas_dir).map_err(|e| ProfilesError::Schemas(e.to_string()));
    let mut outlet = if p.publish {
        Outlet::new(&standard, &config.kafka, &config.privacy, &registry()?, &config.registry_url, &p.entities)?
    } else {
        info!("profiles not published (profiles.publish = false)");
        Outlet::none()
    };
    if governance.is_some() && g.publish {
        outlet = outlet.with_governance(&config.kafka, &standard, &registry()?, &config.registry_url)?;
    }
    let plan = hutong_pipeline::topic_plan(&standard, &config.kafka, &config.privacy, config.file.derived_topics())
        .map_err(|e| ProfilesError::Config(e.to_string()))?;
    if p.ensure_topics {
        hutong_bus::ensure_topics(&config.kafka, &plan).await.map_err(|e| ProfilesError::Kafka(e.to_string()))?;
    } else {
        info!("topics neither created nor checked (profiles.ensure-topics = false)");
    }
    let key = config.pseudonym.load_key().map_err(|e| ProfilesError::Config(e.to_string()))?;
    // A hash-chained log has one writer: the service keeps its own beside the gateway's.
    let mut security_config = config.clone();
    security_config.audit.dir = p.audit_dir.clone().unwrap_or_else(|| config.audit.dir.join("profiles"));
    let publisher = hutong_bus::KafkaPublisher::new(&config.kafka).map_err(|e| ProfilesError::Kafka(e.to_string()))?;
    let publisher: Arc<dyn hutong_bus::Publisher> = Arc::new(publisher);
    let security = Security::load(&security_config, Some(publisher), &Metrics::default())
        .map_err(|e| ProfilesError::Config(e.to_string()))?;

    let status = Arc::new(Status::default());
    let stop = Arc::new(AtomicBool::new(false));
    let settings = ConsumerSettings {
        bus: config.kafka.clone(),
        group_id: p.group_id.clone(),
        store: url.clone(),
        batch_size: p.batch_size.max(1),
        session_timeout_ms: p.session_timeout_ms,
        governance: governance.clone(),
        tick: Duration::from_secs(g.tick_seconds.max(1)),
        objections_from_conflicts: config.file.sharing.objections_from_conflicts,
    };
    let intake_topics: Vec<String> = intake.topics().into_iter().map(str::to_owned).collect();
    let (status_c, stop_c) = (Arc::clone(&status), Arc::clone(&stop));
    let (done_tx, mut done_rx) = tokio::sync::oneshot::channel::<Result<(), ProfilesError>>();
    let consumer = std::thread::Builder::new()
        .name("profiles-consumer".into())
        .spawn(move || {
            let result = consumer::run(&settings, &intake, &outlet, &rules, &status_c, &stop_c);
            if let Err(e) = &result {
                error!(error = %e, "the profile consumer stopped");
            }
            let _ = done_tx.send(result);
        })
        .map_err(|e| ProfilesError::Serve(format!("consumer thread: {e}")))?;

    let queries = service::Queries::new(url);
    let sharing = Arc::new(load_sharing(&config, &standard, &plan)?);
    let service = service::ProfilesService::new(
        queries.clone(),
        Arc::clone(&security.guard),
        key.clone(),
        &standard,
        Arc::clone(&sharing),
    );
    let access = Arc::new(access_service::AccessService::new(
        queries.clone(),
        Arc::clone(&security.guard),
        Arc::clone(&sharing),
    ));
    let adapters = Adapters::load(&config.schemas_dir.join("departments"), &standard)
        .map_err(|e| ProfilesError::Schemas(e.to_string()))?;
    let catalogue = Arc::new(governance_service::Catalogue::of(&adapters, &standard));
    let adapters = Arc::new(adapters);
    let governance_service = match &governance {
        Some(rt) => {
            if !g.metrics_listen.trim().is_empty() {
                let router = governance_service::metrics_router(
                    queries.clone(),
                    Arc::clone(rt),
                    Arc::clone(&catalogue),
                    Arc::clone(&status),
                );
                let addr = g.metrics_listen.trim().to_owned();
                let listener = tokio::net::TcpListener::bind(&addr)
                    .await
                    .map_err(|e| ProfilesError::Serve(format!("binding governance.metrics-listen {addr}: {e}")))?;
                info!(%addr, "governance metrics listening");
                tokio::spawn(async move {
                    if let Err(e) = axum::serve(listener, router).await {
                        error!(error = %e, "metrics endpoint");
                    }
                });
            }
            Some(Arc::new(governance_service::GovernanceService::new(
                queries.clone(),
                Arc::clone(&security.guard),
                Arc::clone(rt),
                Arc::clone(&catalogue),
                Arc::clone(&sharing),
            )))
        }
        None => None,
    };
    let (reporter, health) = tonic_health::server::health_reporter();
    let health_task = {
        let status = Arc::clone(&status);
        tokio::spawn(async move {
            let mut last = None;
            loop {
                let ready = status.ready.load(std::sync::atomic::Ordering::Relaxed);
                if last != Some(ready) {
                    if ready {
                        reporter.set_serving::<ProfilesServer<service::ProfilesService>>().await;
                    } else {
                        reporter.set_not_serving::<ProfilesServer<service::ProfilesService>>().await;
                    }
                    info!(ready, "profiles health");
                    last = Some(ready);
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    let listener = tokio::net::TcpListener::bind(p.listen)
        .await
        .map_err(|e| ProfilesError::Serve(format!("binding {}: {e}", p.listen)))?;
    info!(addr = %p.listen, "profiles listening");
    // The console's pages (docs/console.md) on the same port: the same TLS, identities and
    // services, over HTTP/1.1 or HTTP/2.
    let c = &config.file.console;
    // The admin service over the same schemas, for the console's adapters page (the gateway's
    // own reload generation is read from its /metrics).
    let reloader = hutong_pipeline::Reloader::new(config.schemas_dir.clone(), key, config.pipeline_settings())
        .map_err(|e| ProfilesError::Schemas(e.to_string()))?;
    let admin = Arc::new(hutong_gateway::AdminService::new(Arc::new(reloader), Arc::clone(&security.guard)));
    let console = console::router(Arc::new(console::Console {
        access: Arc::clone(&access),
        governance: governance_service.clone(),
        queries: queries.clone(),
        guard: Arc::clone(&security.guard),
        catalogue: Arc::clone(&catalogue),
        gateways: c.gateways.clone(),
        gateway_metrics: c.gateway_metrics.clone(),
        ca: config.auth.ca_file.clone(),
        kafka: config.kafka.clone(),
        group: p.group_id.clone(),
        topics: intake_topics,
        audit_dirs: [
            ("本服务审计 This service's trail", security_config.audit.dir.clone()),
            ("网关审计 The gateway's trail", config.audit.dir.clone()),
        ]
        .into_iter()
        .filter(|(_, d)| d.join("audit.lock").exists() || std::fs::read_dir(d).is_ok_and(|mut r| r.next().is_some()))
        .map(|(l, d)| (l.to_owned(), d))
        .collect(),
        admin,
        standard: Arc::new(standard),
        adapters: Arc::clone(&adapters),
        scans: tokio::sync::Semaphore::new(2),
    }));
    let console = if c.enabled { console } else { axum::Router::new() };
    let mut routes = tonic::service::Routes::new(health)
        .add_service(ProfilesServer::new(service))
        .add_service(hutong_proto::v1::access_server::AccessServer::from_arc(access));
    if let Some(g) = governance_service {
        routes = routes.add_service(hutong_proto::v1::governance_server::GovernanceServer::from_arc(g));
    }
    let routes = routes.into_axum_router().merge(console).layer(axum::middleware::from_fn(console::browsers));
    let router = tonic::transport::Server::builder().accept_http1(c.enabled).add_routes(routes.into());
    let mut consumer_result = None;
    let stopping = async {
        tokio::select! {
            () = shutdown => {}
            r = &mut done_rx => consumer_result = Some(r.unwrap_or(Ok(()))),
        }
    };
    let audit_sync = security.guard.auditor().sync_every(hutong_gateway::AUDIT_SYNC_EVERY);
    let served = hutong_gateway::serve_router(router, listener, &security, stopping).await;
    audit_sync.abort();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    health_task.abort();
    let _ = consumer.join();
    security.guard.auditor().sync();
    served.map_err(|e| ProfilesError::Serve(e.to_string()))?;
    match consumer_result {
        Some(r) => r,
        None => done_rx.try_recv().unwrap_or(Ok(())),
    }
}

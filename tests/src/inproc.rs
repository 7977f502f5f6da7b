//! The in-process test kit: one [`TestGateway`] (the gRPC server on
//! 127.0.0.1:0 in token mode, publishing through any [`Publisher`]), a
//! validated configuration, copies of `schemas/`, and test records.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use hutong_adapter::PseudonymKey;
use hutong_bus::{BusConfig, Publisher};
use hutong_gateway::{
    AuthConfig, AuthMode, ConfigFile, GatewayConfig, GatewayError, Metrics, Policy, Security, serve_on,
};
use hutong_pipeline::Reloader;
use hutong_proto::v1::{Op, SourceRecord, ingest_client::IngestClient};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use tonic::transport::Channel;

/// Token mode for in-process tests: 公安 may submit household registrations with the bearer token
/// `gongan-token`.
pub fn token_security() -> Security {
    departments_security(GONGAN)
}

const GONGAN: &[(&str, &[&str])] = &[("gongan", &["household_registration"])];

/// The token-mode policy of `departments`, each `(name, kinds)`: a department calls with the
/// bearer token `<name>-token` (the policy holds its SHA-256).
fn policy_for(departments: &[(&str, &[&str])]) -> Policy {
    let mut policy = String::from("version = 1\n");
    for (name, kinds) in departments {
        let sha = hutong_gateway::token_sha256(&format!("{name}-token"));
        policy.push_str(&format!("[departments.{name}]\nkinds = {kinds:?}\ntoken-sha256 = \"{sha}\"\n"));
    }
    Policy::parse(&policy).expect("the test policy parses")
}

/// Token mode for several departments ([`policy_for`]); they call with [`request_as`].
pub fn departments_security(departments: &[(&str, &[&str])]) -> Security {
    Security::plaintext_tokens(policy_for(departments))
}

/// A request carrying `department`'s bearer token (`<department>-token`).
pub fn request_as<T>(department: &str, body: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(body);
    r.metadata_mut().insert("authorization", format!("Bearer {department}-token").parse().unwrap());
    r
}

/// [`token_security`] with its audit trail written to `dir` (and not copied to a topic).
pub fn audited_token_security(dir: &Path) -> Security {
    let mut security = token_security();
    let log = hutong_audit::AuditLog::open(dir, 190).expect("an audit log");
    let auditor = Arc::new(hutong_gateway::Auditor::new(log, None, &Metrics::default()));
    security.guard = Arc::new(hutong_gateway::Guard::new(AuthMode::Token, policy_for(GONGAN), auditor));
    security
}

/// The repository's `schemas/`.
pub fn schemas() -> PathBuf {
    crate::repo_root().join("schemas")
}

/// A copy of `schemas/` in a temporary folder of its own (removed when dropped).
pub fn schemas_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temp dir");
    crate::copy_dir(&schemas(), dir.path());
    dir
}

/// The configuration of an in-process gateway: token mode (no certificates), `kafka`,
/// then whatever `tune` changes in the file; validated as `hutong serve` would.
pub fn config(kafka: BusConfig, tune: impl FnOnce(&mut ConfigFile)) -> GatewayConfig {
    let mut file = ConfigFile {
        kafka,
        auth: AuthConfig { mode: AuthMode::Token, ..AuthConfig::default() },
        ..ConfigFile::default()
    };
    tune(&mut file);
    file.validate_and_build().expect("the test configuration is valid")
}

/// The default in-process configuration (a bus nobody reaches: tests give a publisher).
pub fn default_config() -> GatewayConfig {
    config(BusConfig::default(), |_| {})
}

/// The pseudonym key of the in-process tests.
pub fn key() -> PseudonymKey {
    PseudonymKey::new(b"in-process-test-key-0123".to_vec()).unwrap()
}

/// A 公安 household-registration record with `payload`.
pub fn household(source_id: &str, payload: serde_json::Value) -> SourceRecord {
    SourceRecord {
        kind: "household_registration".into(),
        source_id: source_id.into(),
        revision: 1,
        op: Op::Upsert as i32,
        occurred_at: None,
        payload: serde_json::to_vec(&payload).unwrap(),
        charset: String::new(),
    }
}

/// A request carrying 公安's bearer token.
pub fn request<T>(body: T) -> tonic::Request<T> {
    request_as("gongan", body)
}

/// The gateway's gRPC server in this process.
pub struct TestGateway {
    /// `127.0.0.1:PORT`.
    pub addr: std::net::SocketAddr,
    /// Its pipelines (reload them to change adapters).
    pub reloader: Arc<Reloader>,
    /// Its metrics.
    pub metrics: Arc<Metrics>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), GatewayError>>,
}

impl TestGateway {
    /// The shipped schemas, default config, token security, publishing through `publisher`.
    pub async fn start(publisher: Arc<dyn Publisher>) -> Self {
        Self::start_with(&schemas(), default_config(), publisher).await
    }

    /// The same with `schemas` and `config`.
    pub async fn start_with(schemas: &Path, config: GatewayConfig, publisher: Arc<dyn Publisher>) -> Self {
        Self::start_secured(schemas, config, publisher, token_security()).await
    }

    /// The same with `security` (e.g. [`audited_token_security`]).
    pub async fn start_secured(
        schemas: &Path,
        config: GatewayConfig,
        publisher: Arc<dyn Publisher>,
        security: Security,
    ) -> Self {
        let reloader = Arc::new(Reloader::new(schemas.to_owned(), key(), config.pipeline_settings()).unwrap());
        let metrics = Arc::new(Metrics::default());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let (r, m) = (Arc::clone(&reloader), Arc::clone(&metrics));
        let task = tokio::spawn(async move {
            serve_on(listener, r, publisher, m, None, security, &config, async {
                let _ = stopped.await;
            })
            .await
        });
        Self { addr, reloader, metrics, stop: Some(stop), task }
    }

    /// A client of its ingest service.
    pub async fn client(&self) -> IngestClient<Channel> {
        let channel =
            tonic::transport::Endpoint::from_shared(format!("http://{}", self.addr)).unwrap().connect().await.unwrap();
        IngestClient::new(channel)
    }

    /// Stops the server and waits until it has.
    pub async fn stop(mut self) -> Result<(), GatewayError> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        (&mut self.task).await.expect("the server task")
    }
}

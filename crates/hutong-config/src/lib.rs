//! Hutong's configuration files, read the same by the gateway and the offline
//! tools: the gateway's configuration, every section in one place — the file
//! as written ([`ConfigFile`], `version = 1`), layered over built-in defaults
//! and under `HUTONG__`-prefixed environment variables ([`ConfigFile::load`]),
//! then checked as a whole and built into the runtime [`GatewayConfig`]
//! ([`ConfigFile::validate_and_build`]) before anything starts — and the
//! policy file ([`Policy`]).
#![warn(missing_docs)]

mod policy;

pub use policy::{ADMIN_OPERATIONS, Policy, PolicyError, PolicyIdentity, Principal, token_sha256};

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

use figment::{
    Figment,
    providers::{Env, Format as _, Serialized, Toml},
};
use hutong_adapter::{PayloadLimits, PseudonymKey};
use hutong_bus::BusConfig;
use hutong_pipeline::PipelineSettings;
use hutong_standard::privacy::PrivacyConfig;
use serde::{Deserialize, Serialize};

/// The only version of the file format.
pub const CONFIG_VERSION: u32 = 1;

/// Why the configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file does not exist.
    #[error("config file {} does not exist", .0.display())]
    Missing(PathBuf),
    /// A key is unknown or a value has the wrong type (file or environment), named with its key.
    #[error("invalid configuration: {0}")]
    Parse(#[from] Box<figment::Error>),
    /// The file's `version` is not one this gateway reads.
    #[error("config version {0} is not supported (this gateway reads version {CONFIG_VERSION})")]
    Version(u32),
    /// A value is out of range or settings contradict each other.
    #[error("{key}: {message}")]
    Invalid {
        /// The key, e.g. `delivery.max-in-flight`.
        key: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The Kafka settings are refused.
    #[error("kafka: {0}")]
    Kafka(#[from] hutong_bus::BusError),
    /// The pseudonym key is missing or too short.
    #[error("pseudonym key: {0}")]
    Key(String),
}

fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key, message: message.into() }
}

/// The configuration file as written (TOML, `version = 1`): every section,
/// each with its defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct ConfigFile {
    /// Format version; only 1 exists.
    pub version: u32,
    /// Address of the gRPC ingest service.
    pub listen: SocketAddr,
    /// The `schemas/` folder: the standard, code lists and department adapters.
    pub schemas_dir: PathBuf,
    /// Kafka.
    pub kafka: BusConfig,
    /// Where the pseudonym key comes from.
    pub pseudonym: PseudonymConfig,
    /// Bounds on what callers may send.
    pub limits: LimitsConfig,
    /// The schema registry's REST API (Confluent-compatible, read side).
    pub registry: RegistryConfig,
    /// Duplicate detection and backpressure.
    pub delivery: DeliveryConfig,
    /// Store and forward while Kafka is unreachable.
    pub spool: SpoolConfig,
    /// Who may call: mTLS (or development tokens) and the policy file.
    pub auth: AuthConfig,
    /// The hash-chained audit trail.
    pub audit: AuditConfig,
    /// Per-topic protection of personal fields, and extra (restricted) topics.
    pub privacy: PrivacyConfig,
    /// The shared profile service (一人一档, `hutong profiles serve`).
    pub profiles: ProfilesConfig,
    /// The governance consumers of the same service (交办反馈督办, 供需对接, 成效评估).
    pub governance: GovernanceConfig,
    /// What the consumer service allows a consumer identity on its APIs (docs/sharing.md).
    pub sharing: SharingConfig,
    /// The admin console on the consumer service's port (docs/console.md).
    pub console: ConsoleConfig,
}

impl Default for ConfigFile {
    fn default() -> Self {
        Self {
            version: CONFIG_VERSION,
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            schemas_dir: PathBuf::from("schemas"),
            kafka: BusConfig::default(),
            pseudonym: PseudonymConfig::default(),
            limits: LimitsConfig::default(),
            registry: RegistryConfig::default(),
            delivery: DeliveryConfig::default(),
            spool: SpoolConfig::default(),
            auth: AuthConfig::default(),
            audit: AuditConfig::default(),
            privacy: PrivacyConfig::default(),
            profiles: ProfilesConfig::default(),
            governance: GovernanceConfig::default(),
            sharing: SharingConfig::default(),
            console: ConsoleConfig::default(),
        }
    }
}

impl ConfigFile {
    /// Built-in defaults, then `file` (if given), then `HUTONG__` environment variables
    /// (`HUTONG__KAFKA__BOOTSTRAP_SERVERS` → `kafka.bootstrap-servers`). An unknown key, in the
    /// file or the environment, is an error naming it.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Self::default()));
        if let Some(file) = file {
            if !file.is_file() {
                return Err(ConfigError::Missing(file.to_owned()));
            }
            figment = figment.merge(Toml::file_exact(file));
        }
        let env = Env::prefixed("HUTONG__").map(|k| k.as_str().replace("__", ".").replace('_', "-").into());
        figment.merge(env).extract().map_err(|e| ConfigError::Parse(Box::new(e)))
    }

    /// The pipeline's settings under this file (what the offline tools need too).
    pub fn pipeline_settings(&self) -> PipelineSettings {
        PipelineSettings {
            topics: self.kafka.topics(),
            limits: self.limits.payload(),
            registry_url: self.registry.public_url.clone(),
            privacy: self.privacy.clone(),
        }
    }

    /// Checks what the topic plan is made of: the `[kafka]` settings, and that the audit topic keeps
    /// at least what the file log keeps (`hutong topics plan` checks this much, `serve` all).
    pub fn validate_topics(&self) -> Result<(), ConfigError> {
        self.kafka.validate()?;
        let file_log_ms = i64::from(self.audit.retention_days) * hutong_bus::DAY_MS as i64;
        if self.kafka.audit_retention_ms != -1 && self.kafka.audit_retention_ms < file_log_ms {
            return Err(invalid(
                "kafka.audit-retention-ms",
                format!(
                    "{} ms keeps the audit topic shorter than the file log (audit.retention-days = {}, {file_log_ms} ms)",
                    self.kafka.audit_retention_ms, self.audit.retention_days
                ),
            ));
        }
        Ok(())
    }

    /// The entities whose merged profiles this deployment publishes: the topic plan has their
    /// profile topics (none when the profile service is off).
    pub fn profile_topics(&self) -> Vec<String> {
        if self.profiles.enabled && self.profiles.publish { self.profiles.entities.clone() } else { Vec::new() }
    }

    /// The consumer service's topics of this deployment: merged profiles, and the alert and
    /// match topics when the governance consumers run and publish.
    pub fn derived_topics(&self) -> hutong_bus::DerivedTopics {
        hutong_bus::DerivedTopics {
            profiles: self.profile_topics(),
            governance: self.profiles.enabled && self.governance.enabled && self.governance.publish,
        }
    }

    /// Checks the settings as a whole and builds the runtime configuration.
    pub fn validate_and_build(self) -> Result<GatewayConfig, ConfigError> {
        if self.version != CONFIG_VERSION {
            return Err(ConfigError::Version(self.version));
        }
        self.validate_topics()?;
        let l = self.limits;
        if l.max_records_per_batch == 0 {
            return Err(invalid("limits.max-records-per-batch", "must be at least 1"));
        }
        if l.max_payload_bytes > l.max_message_bytes {
            return Err(invalid(
                "limits.max-payload-bytes",
                format!("{} is larger than limits.max-message-bytes ({})", l.max_payload_bytes, l.max_message_bytes),
            ));
        }
        let d = self.delivery;
        if d.max_in_flight == 0 || d.max_in_flight_per_department == 0 {
            return Err(invalid("delivery.max-in-flight", "must be at least 1 (globally and per department)"));
        }
        if d.max_in_flight_per_department > d.max_in_flight {
            return Err(invalid(
                "delivery.max-in-flight-per-department",
                format!("{} exceeds delivery.max-in-flight ({})", d.max_in_flight_per_department, d.max_in_flight),
            ));
        }
        if d.dedupe_capacity == 0 {
            return Err(invalid("delivery.dedupe-capacity", "must be at least 1"));
        }
        let registry = match self.registry.listen.trim() {
            "" => None,
            addr => Some(addr.parse::<SocketAddr>().map_err(|e| invalid("registry.listen", format!("{addr:?}: {e}")))?),
        };
        if self.registry.public_url.trim().is_empty() {
            return Err(invalid("registry.public-url", "is empty: ce_dataschema points under it"));
        }
        if self.governance.enabled && !self.profiles.enabled {
            return Err(invalid("governance.enabled", "runs in the consumer service: set profiles.enabled too"));
        }
        if let Some(now) = &self.governance.now
            && chrono::DateTime::parse_from_rfc3339(now).is_err()
        {
            return Err(invalid(
                "governance.now",
                format!("{now:?} is not an RFC 3339 time (2026-12-01T09:00:00+08:00)"),
            ));
        }
        if !self.governance.metrics_listen.trim().is_empty()
            && self.governance.metrics_listen.trim().parse::<SocketAddr>().is_err()
        {
            return Err(invalid(
                "governance.metrics-listen",
                format!("{:?} is not host:port", self.governance.metrics_listen),
            ));
        }
        if self.governance.tick_seconds == 0 {
            return Err(invalid("governance.tick-seconds", "must be at least 1"));
        }
        let spool = self.spool.enabled.then_some(self.spool.clone());
        if let Some(s) = &spool
            && s.max_records == 0
        {
            return Err(invalid("spool.max-records", "must be at least 1"));
        }
        if self.auth.mode == AuthMode::Mtls {
            for (key, file) in [
                ("auth.ca-file", &self.auth.ca_file),
                ("auth.cert-file", &self.auth.cert_file),
                ("auth.key-file", &self.auth.key_file),
            ] {
                if file.is_none() {
                    return Err(invalid(key, "is required in mtls mode"));
                }
            }
        } else if self.auth.cert_file.is_some() != self.auth.key_file.is_some() {
            return Err(invalid("auth.cert-file", "auth.cert-file and auth.key-file go together"));
        }
        Ok(GatewayConfig {
            listen: self.listen,
            schemas_dir: self.schemas_dir.clone(),
            kafka: self.kafka.clone(),
            pseudonym: self.pseudonym.clone(),
            limits: Limits {
                max_message_bytes: l.max_message_bytes,
                max_records_per_batch: l.max_records_per_batch,
                payload: l.payload(),
            },
            registry_listen: registry,
            registry_url: self.registry.public_url.clone(),
            delivery: d,
            spool,
            auth: self.auth.clone(),
            audit: self.audit.clone(),
            privacy: self.privacy.clone(),
            file: self,
        })
    }
}

/// The validated configuration the gateway runs with.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayConfig {
    /// Address of the gRPC port.
    pub listen: SocketAddr,
    /// The `schemas/` folder.
    pub schemas_dir: PathBuf,
    /// Kafka (checked: the passthrough options override nothing the guarantees rest on).
    pub kafka: BusConfig,
    /// Where the pseudonym key comes from ([`PseudonymConfig::load_key`]).
    pub pseudonym: PseudonymConfig,
    /// Bounds on what callers may send.
    pub limits: Limits,
    /// Where the registry's REST API and `/metrics` are served; `None`: nowhere.
    pub registry_listen: Option<SocketAddr>,
    /// The URL consumers reach the registry at (`ce_dataschema` points under it).
    pub registry_url: String,
    /// Duplicate detection and backpressure.
    pub delivery: DeliveryConfig,
    /// Store and forward; `None` when off.
    pub spool: Option<SpoolConfig>,
    /// Identity and the policy file.
    pub auth: AuthConfig,
    /// The audit trail.
    pub audit: AuditConfig,
    /// Per-topic protection of personal fields.
    pub privacy: PrivacyConfig,
    /// The file as it was given (for `--print-config` and SIGHUP reloads).
    pub file: ConfigFile,
}

impl GatewayConfig {
    /// The pipeline's settings under this configuration.
    pub fn pipeline_settings(&self) -> PipelineSettings {
        self.file.pipeline_settings()
    }
}

/// Bounds on what callers may send, as the gateway applies them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest gRPC message, decoded, in bytes.
    pub max_message_bytes: usize,
    /// Most records in one `SubmitRequest`.
    pub max_records_per_batch: usize,
    /// Bounds of one record's payload.
    pub payload: PayloadLimits,
}

/// Store and forward (`[spool]`): off by default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct SpoolConfig {
    /// Accept records into the local spool when Kafka is unreachable (answer SPOOLED).
    pub enabled: bool,
    /// The spool file (redb).
    pub path: PathBuf,
    /// Most messages it holds; beyond, requests get RESOURCE_EXHAUSTED.
    pub max_records: u64,
    /// How often a non-empty spool tries to replay, in milliseconds.
    pub replay_interval_ms: u64,
}

impl Default for SpoolConfig {
    fn default() -> Self {
        Self { enabled: false, path: PathBuf::from("spool.redb"), max_records: 1_000_000, replay_interval_ms: 1_000 }
    }
}

/// Duplicate detection and backpressure (`[delivery]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct DeliveryConfig {
    /// Published source records remembered to answer retries DUPLICATE.
    pub dedupe_capacity: u64,
    /// How long a published record is remembered, in seconds.
    pub dedupe_ttl_secs: u64,
    /// Records in flight (accepted, not yet answered) across all departments;
    /// beyond it requests get RESOURCE_EXHAUSTED. Keep it below the producer
    /// queue (`queue.buffering.max.messages`, 100,000 by default).
    pub max_in_flight: usize,
    /// Records in flight per department, so one department cannot starve the others.
    pub max_in_flight_per_department: usize,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            dedupe_capacity: 100_000,
            dedupe_ttl_secs: 900,
            max_in_flight: 50_000,
            max_in_flight_per_department: 20_000,
        }
    }
}

/// Where the schema registry is served (`[registry]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct RegistryConfig {
    /// Address of the registry's HTTP port (also `/metrics`); empty to serve none.
    pub listen: String,
    /// The URL consumers reach it at; `ce_dataschema` is `<public-url>/schemas/ids/<id>`.
    pub public_url: String,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self { listen: "127.0.0.1:8081".to_owned(), public_url: "http://127.0.0.1:8081".to_owned() }
    }
}

/// The key of keyed pseudonyms (`person_key`): from a file or an environment
/// variable, never from the config file itself (`[pseudonym]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct PseudonymConfig {
    /// A file holding the key (at least 16 bytes; surrounding white space ignored).
    pub key_file: Option<PathBuf>,
    /// The environment variable holding the key, used when `key-file` is unset.
    pub key_env: String,
}

impl Default for PseudonymConfig {
    fn default() -> Self {
        Self { key_file: None, key_env: "HUTONG_PSEUDONYM_KEY".to_owned() }
    }
}

impl PseudonymConfig {
    /// Reads the key from `key-file`, else from the `key-env` variable.
    pub fn load_key(&self) -> Result<PseudonymKey, ConfigError> {
        let bytes = match &self.key_file {
            Some(path) => std::fs::read(path)
                .map_err(|e| ConfigError::Key(format!("{}: {e}", path.display())))?
                .trim_ascii()
                .to_vec(),
            None => std::env::var(&self.key_env)
                .map_err(|_| {
                    ConfigError::Key(format!("set pseudonym.key-file or the {} environment variable", self.key_env))
                })?
                .into_bytes(),
        };
        PseudonymKey::new(bytes)
            .ok_or_else(|| ConfigError::Key(format!("must be at least {} bytes", PseudonymKey::MIN_LEN)))
    }
}

/// Bounds on what callers may send (`[limits]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest gRPC message, decoded, in bytes.
    pub max_message_bytes: usize,
    /// Most records in one `SubmitRequest`.
    pub max_records_per_batch: usize,
    /// Largest payload of one record, in bytes.
    pub max_payload_bytes: usize,
    /// Deepest JSON nesting of a payload.
    pub max_json_depth: usize,
}

impl LimitsConfig {
    /// The bounds of one record's payload.
    pub fn payload(&self) -> PayloadLimits {
        PayloadLimits { max_bytes: self.max_payload_bytes, max_depth: self.max_json_depth }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let p = PayloadLimits::default();
        Self {
            max_message_bytes: 16 * 1024 * 1024,
            max_records_per_batch: 10_000,
            max_payload_bytes: p.max_bytes,
            max_json_depth: p.max_depth,
        }
    }
}

/// How callers prove who they are (`auth.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthMode {
    /// Client certificates signed by the deployment's CA (the default).
    #[default]
    Mtls,
    /// Static bearer tokens, stored hashed in the policy file: development and trials only.
    Token,
}

/// The authentication settings (`[auth]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct AuthConfig {
    /// `mtls` (default) or `token` (development only).
    pub mode: AuthMode,
    /// The policy file: identities, and what each may do.
    pub policy_file: PathBuf,
    /// CA bundle (PEM) that signs client certificates.
    pub ca_file: Option<PathBuf>,
    /// The gateway's certificate chain (PEM).
    pub cert_file: Option<PathBuf>,
    /// The gateway's private key (PEM).
    pub key_file: Option<PathBuf>,
    /// Certificate revocation lists (PEM) of the CA; re-read on SIGHUP.
    pub crl_files: Vec<PathBuf>,
    /// Longest a TLS handshake may take, in milliseconds.
    pub handshake_timeout_ms: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            mode: AuthMode::Mtls,
            policy_file: PathBuf::from("policy.toml"),
            ca_file: None,
            cert_file: None,
            key_file: None,
            crl_files: Vec::new(),
            handshake_timeout_ms: 10_000,
        }
    }
}

/// Where the audit trail goes (`[audit]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Directory of the day files (`audit-YYYYMMDD.jsonl`).
    pub dir: PathBuf,
    /// Days a day file is kept. The default, 190, keeps more than the six
    /// months the Cybersecurity Law (网络安全法, art. 21) requires for logs.
    pub retention_days: u32,
    /// Copy every entry to the audit topic (`<prefix>.audit.v1`) as well.
    pub publish: bool,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self { dir: PathBuf::from("audit"), retention_days: 190, publish: true }
    }
}

/// The shared profile service (一人一档): where it listens, where it keeps its state, which
/// consumer group its instances share.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct ProfilesConfig {
    /// Whether the deployment runs it: its topics are then part of the topic plan.
    pub enabled: bool,
    /// Address of its gRPC port (`hutong.v1.Profiles`, health).
    pub listen: SocketAddr,
    /// `sqlite:PATH` (embedded, the default) or `postgres://user@host:port/db`.
    pub store: String,
    /// The Kafka consumer group every instance joins (instances share the partitions).
    pub group_id: String,
    /// The merge rules (`<entity>.toml`); default `<schemas-dir>/profiles`.
    pub rules_dir: Option<PathBuf>,
    /// The entities merged into profiles.
    pub entities: Vec<String>,
    /// Publish every profile change to `<prefix>.<entity>.profile.v1`.
    pub publish: bool,
    /// Most facts applied in one store transaction.
    pub batch_size: usize,
    /// Its own hash-chained audit trail (a log has one writer); default `<audit.dir>/profiles`.
    pub audit_dir: Option<PathBuf>,
    /// How long the group waits for a silent instance before giving its partitions to the
    /// others (Kafka's `session.timeout.ms`).
    pub session_timeout_ms: u32,
    /// Create missing topics and check existing ones at start, as the gateway does; `false`
    /// where the service's Kafka principal may only read and write (the gateway or the operator
    /// sees to the topics).
    pub ensure_topics: bool,
}

impl Default for ProfilesConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            listen: SocketAddr::from(([127, 0, 0, 1], 50061)),
            store: "sqlite:profiles.db".to_owned(),
            group_id: "hutong-profiles".to_owned(),
            rules_dir: None,
            entities: ["building", "grid", "household", "organization", "person"].map(str::to_owned).to_vec(),
            publish: true,
            batch_size: 20_000,
            audit_dir: None,
            session_timeout_ms: 10_000,
            ensure_topics: true,
        }
    }
}

/// The governance consumers (交办反馈督办, 供需对接, 成效评估), run by the consumer service
/// (`hutong profiles serve`) beside the profiles: the same process, store, identities and audit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct GovernanceConfig {
    /// Whether the service reads events, service requests and resources (and the dead-letter
    /// topic, for the effectiveness report) and keeps threads, deadlines, alerts and matches.
    pub enabled: bool,
    /// The lifecycle, alert and matching rules; default `<schemas-dir>/governance`.
    pub rules_dir: Option<PathBuf>,
    /// The working-day calendar; default `<schemas-dir>/calendar/cn`.
    pub calendar_dir: Option<PathBuf>,
    /// Publish alerts to `<prefix>.alert.v1` and matches to `<prefix>.match.v1`.
    pub publish: bool,
    /// How often deadlines are checked against the clock, seconds.
    pub tick_seconds: u64,
    /// A fixed "now" (RFC 3339) instead of the clock: for replays and tests, so deadline
    /// alerts and reports do not depend on when they run.
    pub now: Option<String>,
    /// Where the service serves `/metrics` (the month's indicators, over HTTP); empty: nowhere.
    pub metrics_listen: String,
}

impl Default for GovernanceConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            rules_dir: None,
            calendar_dir: None,
            publish: true,
            tick_seconds: 30,
            now: None,
            metrics_listen: "127.0.0.1:9465".to_owned(),
        }
    }
}

/// `[console]`: the admin console (管理控制台), served at `/console` on `profiles.listen`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct ConsoleConfig {
    /// Serve it.
    pub enabled: bool,
    /// The gateways whose health the overview shows (gRPC health over TLS with `auth.ca-file`;
    /// no client certificate).
    pub gateways: Vec<String>,
    /// Their Prometheus endpoints (`/metrics` on the registry port): producer queue, spool,
    /// records in flight, the adapters' reload generation.
    pub gateway_metrics: Vec<String>,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            gateways: vec!["https://127.0.0.1:50051".to_owned()],
            gateway_metrics: vec!["http://127.0.0.1:8081/metrics".to_owned()],
        }
    }
}

/// `[sharing]`: per-consumer limits on the consumer service's APIs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct SharingConfig {
    /// Calls per second a consumer identity may make (sustained); above it, RESOURCE_EXHAUSTED.
    pub rate_per_second: u32,
    /// Calls a consumer may make at once above the rate.
    pub burst: u32,
    /// Distinct profiles one consumer may read within an hour before a misuse signal is raised
    /// (the data of a whole district read out, far beyond a purpose); 0: never.
    pub profiles_per_hour: u32,
    /// Open an objection (数据异议) on the losing fact of every new disagreement the profile
    /// service finds between departments (filed by `hutong`, routed to the losing department).
    pub objections_from_conflicts: bool,
}

impl Default for SharingConfig {
    fn default() -> Self {
        Self { rate_per_second: 20, burst: 50, profiles_per_hour: 2000, objections_from_conflicts: false }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file that passes, in token mode (no certificates needed).
    fn token_mode() -> ConfigFile {
        ConfigFile { auth: AuthConfig { mode: AuthMode::Token, ..AuthConfig::default() }, ..ConfigFile::default() }
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail's error type
    fn layers_file_then_env_and_refuses_unknown_keys() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("hutong.toml", "listen = \"127.0.0.1:6000\"\n[kafka]\ntopic-prefix = \"t\"\n")?;
            jail.set_env("HUTONG__KAFKA__BOOTSTRAP_SERVERS", "10.0.0.1:9999");
            let c = ConfigFile::load(Some(Path::new("hutong.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(c.listen.port(), 6000);
            assert_eq!(c.kafka.topic_prefix, "t");
            assert_eq!(c.kafka.bootstrap_servers, "10.0.0.1:9999");
            assert_eq!(c.kafka.partitions, 3, "defaults stay under the file");
            assert_eq!(c.version, 1);

            jail.create_file("bad.toml", "[kafka]\nbootstrap-server = \"x\"\n")?;
            let e = ConfigFile::load(Some(Path::new("bad.toml"))).unwrap_err().to_string();
            assert!(e.contains("bootstrap-server"), "{e}");

            jail.set_env("HUTONG__LISTN", "1");
            let e = ConfigFile::load(None).unwrap_err().to_string();
            assert!(e.contains("listn"), "{e}");
            Ok(())
        });
    }

    #[test]
    fn validation_refuses_what_cannot_work_with_the_key_named() {
        assert!(token_mode().validate_and_build().is_ok());
        let refused = |f: ConfigFile| f.validate_and_build().unwrap_err().to_string();
        assert!(refused(ConfigFile { version: 2, ..token_mode() }).contains("version 2"));
        let mut f = token_mode();
        f.kafka.options.insert("acks".into(), "1".into());
        assert!(refused(f).contains("kafka.options may not set \"acks\""));
        let mut f = token_mode();
        f.delivery.max_in_flight_per_department = f.delivery.max_in_flight + 1;
        assert!(refused(f).contains("delivery.max-in-flight-per-department"));
        let mut f = token_mode();
        f.limits.max_payload_bytes = f.limits.max_message_bytes + 1;
        assert!(refused(f).contains("limits.max-payload-bytes"));
        let mut f = token_mode();
        f.registry.listen = "nowhere".into();
        assert!(refused(f).contains("registry.listen"));
        // The audit topic keeps at least what the file log keeps; topic settings Kafka would refuse.
        let mut f = token_mode();
        f.kafka.audit_retention_ms = 30 * 86_400_000;
        assert!(refused(f).contains("kafka.audit-retention-ms: 2592000000 ms keeps the audit topic shorter"));
        let mut f = token_mode();
        f.audit.retention_days = 400;
        f.kafka.audit_retention_ms = -1;
        assert!(f.validate_and_build().is_ok());
        let mut f = token_mode();
        f.kafka.min_insync_replicas = Some(2);
        assert!(refused(f).contains("kafka.min-insync-replicas 2 must be between 1 and kafka.replication-factor (1)"));
        let mut f = token_mode();
        f.kafka.topic_prefix = "hutong prod".into();
        assert!(refused(f).contains("kafka.topic-prefix \"hutong prod\""));
        // mTLS needs the CA and the gateway's certificate and key.
        assert!(refused(ConfigFile::default()).contains("auth.ca-file: is required in mtls mode"));
        let built = token_mode().validate_and_build().unwrap();
        assert_eq!(built.limits.payload, PayloadLimits::default());
        assert_eq!(built.registry_listen, Some(SocketAddr::from(([127, 0, 0, 1], 8081))));
        assert!(built.spool.is_none());
    }
}

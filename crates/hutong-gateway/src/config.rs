use std::{net::SocketAddr, path::PathBuf};

use hutong_adapter::PayloadLimits;
use hutong_bus::BusConfig;
use hutong_standard::privacy::PrivacyConfig;
use serde::{Deserialize, Serialize};

use crate::{AuditConfig, AuthConfig};

/// The gateway's configuration: built-in defaults, then the file, then
/// `HUTONG__`-prefixed environment variables (layered by the CLI).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct GatewayConfig {
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

/// Where the schema registry is served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct RegistryConfig {
    /// Address of the registry's HTTP port; empty to serve none.
    pub listen: String,
    /// The URL consumers reach it at; `ce_dataschema` is `<public-url>/schemas/ids/<id>`.
    pub public_url: String,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self { listen: "127.0.0.1:8081".to_owned(), public_url: "http://127.0.0.1:8081".to_owned() }
    }
}

impl GatewayConfig {
    /// The pipeline's settings under this configuration.
    pub fn pipeline_settings(&self) -> crate::PipelineSettings {
        crate::PipelineSettings {
            topics: self.kafka.topics(),
            limits: self.limits.payload(),
            registry_url: self.registry.public_url.clone(),
            privacy: self.privacy.clone(),
        }
    }
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
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
        }
    }
}

/// The key of keyed pseudonyms (`person_key`): from a file or an environment
/// variable, never from the config file itself.
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

/// Bounds on what callers may send.
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

impl LimitsConfig {
    /// The payload part of the limits.
    pub fn payload(&self) -> PayloadLimits {
        PayloadLimits { max_bytes: self.max_payload_bytes, max_depth: self.max_json_depth }
    }
}

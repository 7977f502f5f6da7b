//! The Hutong gateway: the gRPC services (`hutong.v1.Ingest`, `hutong.v1.Admin`,
//! health, reflection) behind mTLS and the policy, the schema registry's REST
//! API and `/metrics`, wired to the pipeline (`hutong-pipeline`) and the bus
//! (`hutong-bus`). Rooms by responsibility:
//!
//! - `ingest/`: the ingest service — batches, admission, the dedupe window, delivery and receipts, the spool;
//! - `admin/`: the admin service;
//! - `registry_api/`: the Confluent-compatible REST API;
//! - `auth/`: the policy file, the guard of every call, TLS;
//! - `audit.rs`: the typed audit events and their trail;
//! - `metrics.rs`, `error.rs` (one error vocabulary), `server.rs` (start, signals, stop).
//!
//! Its configuration and policy files are read by `hutong-config`.
#![warn(missing_docs)]

mod admin;
mod audit;
mod auth;
mod error;
mod ingest;
mod metrics;
mod registry_api;
mod server;

pub use admin::AdminService;
pub use audit::{Answered, AuditEvent, Auditor, SYNC_EVERY as AUDIT_SYNC_EVERY};
pub use auth::{Guard, Security, SecurityError};
pub use error::{ErrorCode, GatewayError};
/// The configuration and policy files (`hutong-config`), as the gateway reads them.
pub use hutong_config::{
    ADMIN_OPERATIONS, AuditConfig, AuthConfig, AuthMode, CONFIG_VERSION, ConfigError, ConfigFile, DeliveryConfig,
    GatewayConfig, Limits, LimitsConfig, Policy, PolicyError, PolicyIdentity, Principal, PseudonymConfig,
    RegistryConfig, SpoolConfig, token_sha256,
};
pub use ingest::IngestService;
pub use metrics::{BeforeScrape, Metrics, router as metrics_router};
pub use registry_api::{catalog_router, router as registry_router};
pub use server::{serve, serve_on, serve_router};

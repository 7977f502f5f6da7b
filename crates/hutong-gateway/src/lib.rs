//! The Hutong gateway: the `hutong.v1.Ingest` gRPC service, the pipeline from
//! a department's source record to canonical messages on the bus, and the
//! server around them (health, reflection, graceful shutdown).
#![warn(missing_docs)]

mod admin;
mod audit;
mod config;
mod metrics;
mod pipeline;
mod registry_api;
mod reload;
mod security;
mod server;
mod service;
mod tls;

pub use admin::{AdminService, DryRun, check_subject, dry_run};
pub use audit::{AuditConfig, Auditor};
pub use config::{DeliveryConfig, GatewayConfig, LimitsConfig, PseudonymConfig, RegistryConfig, SpoolConfig};
pub use metrics::{Metrics, router as metrics_router};
pub use pipeline::{Outcome, Pipeline, PipelineSettings, Prepared};
pub use registry_api::router as registry_router;
pub use reload::{ReloadStatus, Reloader, WatchGuard};
pub use security::{
    ADMIN_OPERATIONS, AuthConfig, AuthMode, Guard, Policy, PolicyIdentity, Principal, certificate_names, token_sha256,
};
pub use server::{GatewayError, Security, serve, serve_on};
pub use service::IngestService;
pub use tls::{ClientAuth, error_chain};

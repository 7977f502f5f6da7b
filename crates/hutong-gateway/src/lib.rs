//! The Hutong gateway: the `hutong.v1.Ingest` gRPC service, the pipeline from
//! a department's source record to canonical messages on the bus, and the
//! server around them (health, reflection, graceful shutdown).
#![warn(missing_docs)]

mod config;
mod identity;
mod pipeline;
mod reload;
mod server;
mod service;

pub use config::{GatewayConfig, LimitsConfig, PseudonymConfig};
pub use identity::{DEPARTMENT_HEADER, department_from_request};
pub use pipeline::{Outcome, Pipeline, Prepared};
pub use reload::{ReloadStatus, Reloader, WatchGuard};
pub use server::{GatewayError, serve, serve_on};
pub use service::IngestService;

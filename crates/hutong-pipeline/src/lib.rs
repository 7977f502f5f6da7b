//! The per-record work of Hutong, without I/O: a department's source record
//! is decoded from its charset, mapped by the department's adapter, checked
//! against the standard, protected per topic, and wrapped in its envelope —
//! or rejected with every reason and its dead-letter copy.
//!
//! [`Pipeline`] is one loaded set of standard, adapters and registry;
//! [`Reloader`] swaps in a new one when `schemas/` changes (only a set that
//! loads and passes every check); [`dry_run`] answers what the gateway would
//! publish, for `hutong validate` and the admin RPC alike.
#![warn(missing_docs)]

mod dry_run;
mod error;
mod pipeline;
mod reload;

pub use dry_run::{DryRecord, DryRun, dry_run};
pub use error::PipelineError;
pub use pipeline::{Outcome, Pipeline, PipelineSettings, Prepared, normalise_citizen_id, record_digest, topic_plan};
pub use reload::{ReloadStatus, Reloader, WatchGuard};

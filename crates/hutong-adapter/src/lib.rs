//! Department adapters as data: one TOML file per (department, source kind,
//! source version) under `schemas/departments/<department>/`, mapping the
//! department's own field names and code sets to canonical records of the
//! standard.
//!
//! Files are parsed into a versioned intermediate form ([`spec`]), checked
//! against the standard, then built into runtime [`Adapter`]s.
#![warn(missing_docs)]

mod adapter;
mod expr;
pub mod golden;
mod payload;
mod pseudonym;
pub mod spec;
mod transform;

pub use adapter::{Adapter, AdapterError, Adapters, Canonical, MapContext};
pub use payload::{PayloadLimits, decode_payload};
pub use pseudonym::PseudonymKey;

//! The unified data standard: entity schemas (JSON Schema 2020-12) under
//! `schemas/standard/`, code lists under `schemas/codes/`, and the checked
//! formats (check digits, division codes) they rely on.
//!
//! [`Standard::load`] compiles every entity schema once; [`Standard::validate`]
//! answers with every [`Violation`] of a canonical record.
#![warn(missing_docs)]

pub mod checks;
pub mod codes;
pub mod docs;
pub mod lint;
pub mod privacy;
pub mod rules;
mod standard;
mod violation;

pub use codes::{Code, CodeList, CodeLists};
pub use standard::{CONSISTENCY_RULE, Entity, OnMismatch, Standard, StandardError, ViewValidator};
pub use violation::Violation;

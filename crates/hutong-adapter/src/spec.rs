//! The adapter file format, version 1, as parsed from TOML before it is
//! checked and built into a runtime [`crate::Adapter`].
//!
//! ```toml
//! version = 1
//! department = "gongan"
//! kind = "household_registration"
//! source-version = "2019"
//! title = "公安 户籍人口"
//!
//! [[output]]
//! entity = "person"
//!
//! [[output.field]]
//! to = "/name"
//! from = "XM"
//! transforms = ["trim", "nfkc"]
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;

/// One adapter file.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct AdapterSpec {
    /// Format version; only `1` exists.
    pub version: u32,
    /// Department id (the folder name under `schemas/departments/`).
    pub department: String,
    /// The department's source kind, as sent in `SourceRecord.kind`.
    pub kind: String,
    /// The version of the department's export format this file maps.
    pub source_version: String,
    /// A title for people, in Chinese.
    pub title: String,
    /// Longer description.
    #[serde(default)]
    pub description: Option<String>,
    /// The canonical records one source record produces.
    pub output: Vec<OutputSpec>,
}

/// One canonical record produced from a source record.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct OutputSpec {
    /// Entity of the standard, e.g. `person`.
    pub entity: String,
    /// How each target field is filled.
    pub field: Vec<FieldSpec>,
}

/// How one target field is filled.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct FieldSpec {
    /// JSON pointer into the canonical record, e.g. `/residence/division_code`.
    pub to: String,
    /// Source field name (top-level key of the payload).
    #[serde(default)]
    pub from: Option<String>,
    /// A constant instead of a source field.
    #[serde(default)]
    pub value: Option<String>,
    /// Used when the source field is missing or blank.
    #[serde(default)]
    pub default: Option<String>,
    /// Applied in order to the source value.
    #[serde(default)]
    pub transforms: Vec<TransformSpec>,
}

/// A transform of a string value.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum TransformSpec {
    /// Strip leading and trailing white space (including U+3000).
    Trim,
    /// Unicode NFKC: full-width digits and letters to half-width.
    Nfkc,
    /// Upper-case ASCII letters.
    Upper,
    /// Parse a date in any of the given `chrono` formats; output `YYYY-MM-DD`.
    Date(Vec<String>),
    /// Look the value up in a code list of the standard by code, name or alias.
    Code(CodeSpec),
    /// Map department codes to national codes.
    Map(MapSpec),
    /// Normalise a citizen ID: 15-digit legacy numbers converted or rejected.
    CitizenId(CitizenIdSpec),
    /// Replace the value with its keyed pseudonym (HMAC-SHA256, hex).
    Pseudonym,
}

/// What to do with a value a code list or map does not know.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum UnknownPolicy {
    /// The record is rejected.
    Reject,
    /// The value is kept as it is (the standard may still reject it).
    Keep,
    /// The value becomes this code (e.g. `97` 其他).
    Other(String),
}

/// `code = { list = "gb-t-3304", unknown = "reject" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct CodeSpec {
    /// Code list id.
    pub list: String,
    /// Policy for values the list does not know.
    pub unknown: UnknownPolicy,
}

/// `map = { table = { "M" = "1" }, unknown = "reject" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct MapSpec {
    /// Department value → national code.
    pub table: BTreeMap<String, String>,
    /// Policy for values the table does not know.
    pub unknown: UnknownPolicy,
}

/// `citizen-id = { legacy15 = "convert" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct CitizenIdSpec {
    /// What to do with 15-digit numbers.
    pub legacy15: Legacy15Policy,
}

/// Policy for 15-digit citizen IDs (GB 11643-1989).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Legacy15Policy {
    /// Convert to 18 characters (century 19, check character computed).
    Convert,
    /// Reject the record.
    Reject,
}

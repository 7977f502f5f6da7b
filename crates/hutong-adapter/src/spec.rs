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
    /// What the department's record key (`SourceRecord.source_id`) is.
    #[serde(default)]
    pub source_id: Option<SourceIdSpec>,
    /// How often the department sends this kind (`realtime`, `daily`, `weekly`, `monthly`): its
    /// update cycle (更新周期), against which the effectiveness report measures freshness.
    #[serde(default)]
    pub update_cycle: Option<String>,
    /// The canonical records one source record produces.
    pub output: Vec<OutputSpec>,
    /// A mapping being written (`hutong department new` makes one): checked when named (`hutong
    /// adapter check PATH`), left aside by the gateway and every other command until the line is
    /// removed, so a half-written mapping never stops the other adapters from loading.
    #[serde(default)]
    pub draft: bool,
}

/// The department's key of its records (`source-id = { from = "GMSFHM", pii = "citizen-id" }`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct SourceIdSpec {
    /// The payload field the key is (the default of `hutong ingest --id-field`).
    #[serde(default)]
    pub from: Option<String>,
    /// The kind of personal data the key is (an `x-pii` value), when it is: it then travels
    /// only pseudonymised (in keys, headers, event ids), never raw.
    #[serde(default)]
    pub pii: Option<String>,
}

/// One canonical record produced from a source record.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct OutputSpec {
    /// Entity of the standard, e.g. `person`.
    pub entity: String,
    /// A CEL condition over `src` (the payload): the record is produced only when true.
    #[serde(default)]
    pub when: Option<String>,
    /// How each target field is filled.
    #[serde(default)]
    pub field: Vec<FieldSpec>,
    /// Arrays of the record filled from arrays of the source, one element per element.
    #[serde(default)]
    pub each: Vec<EachSpec>,
}

/// An array of the record filled from an array of the source (`[[output.each]]`): one target
/// element per source element, its fields read from the element (`from`) or computed with the
/// element as `item` and its position as `index` in expressions.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct EachSpec {
    /// The source array: a top-level field of the payload.
    pub over: String,
    /// The target array, e.g. `/status_history`.
    pub to: String,
    /// A CEL condition per element (`item`, `index`, `src`, `meta`): the element is mapped only
    /// when true.
    #[serde(default)]
    pub when: Option<String>,
    /// The element's fields, `to` relative to the element (e.g. `/status`).
    pub field: Vec<FieldSpec>,
}

/// How one target field is filled.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct FieldSpec {
    /// JSON pointer into the canonical record, e.g. `/residence/division_code`.
    pub to: String,
    /// Source field name (top-level key of the payload), or several joined by `sep`.
    #[serde(default)]
    pub from: Option<Sources>,
    /// Separator when `from` names several fields (default `,`).
    #[serde(default)]
    pub sep: Option<String>,
    /// A constant instead of a source field.
    #[serde(default)]
    pub value: Option<String>,
    /// A CEL expression over `src` (the payload) and `meta` (source_id, revision, kind, department).
    #[serde(default)]
    pub expr: Option<String>,
    /// A CEL condition: the field is filled only when true. A condition that reads `value` sees
    /// the field's source value trimmed (U+3000 too) and NFKC-normalised, before the transforms
    /// (a full-width or padded `无` reads `无`).
    #[serde(default)]
    pub when: Option<String>,
    /// JSON type of the result: `string` (default), `integer`, `number` or `boolean`.
    #[serde(default, rename = "as")]
    pub as_type: Option<ValueType>,
    /// Used when the source field is missing or blank.
    #[serde(default)]
    pub default: Option<String>,
    /// Applied in order to the source value.
    #[serde(default)]
    pub transforms: Vec<TransformSpec>,
}

/// One source field or several.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Sources {
    /// One field.
    One(String),
    /// Several fields, joined by `sep`.
    Many(Vec<String>),
}

impl Sources {
    /// The field names.
    pub fn names(&self) -> Vec<&str> {
        match self {
            Self::One(s) => vec![s.as_str()],
            Self::Many(v) => v.iter().map(String::as_str).collect(),
        }
    }
}

/// The JSON type a field's value is converted to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ValueType {
    /// A JSON string (default).
    String,
    /// A JSON integer.
    Integer,
    /// A JSON number.
    Number,
    /// `true`/`false` (also 是/否, 1/0, Y/N).
    Boolean,
}

impl ValueType {
    /// The JSON Schema `type` name.
    pub fn schema_name(self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Integer => "integer",
            Self::Number => "number",
            Self::Boolean => "boolean",
        }
    }
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
    /// Lower-case ASCII letters.
    Lower,
    /// Parse a date in any of the given `chrono` formats (or `excel` for a
    /// spreadsheet serial day number); output `YYYY-MM-DD`.
    Date(Vec<String>),
    /// Parse a date-time; output RFC 3339 with the offset of `timezone`.
    Datetime(DatetimeSpec),
    /// Look the value up in a code list of the standard by code, name or alias.
    Code(CodeSpec),
    /// Map department codes to national codes.
    Map(MapSpec),
    /// Normalise a citizen ID: 15-digit legacy numbers converted or rejected.
    CitizenId(CitizenIdSpec),
    /// Replace the value with its keyed pseudonym (HMAC-SHA256, hex).
    Pseudonym,
    /// The birth date (`YYYY-MM-DD`) embedded in an 18-character citizen ID.
    IdBirthDate,
    /// The GB/T 2261.1 sex code embedded in a citizen ID (odd sequence: 1, even: 2).
    IdSex,
    /// The 6-digit division code embedded in a citizen ID.
    IdDivision,
    /// Normalise a Chinese phone number: `+86`, spaces and dashes removed;
    /// mobiles as 11 digits, landlines as `0AREA-NUMBER`.
    Phone,
    /// Convert a `lon,lat` pair from GCJ-02 (Chinese map apps) to WGS-84 and
    /// keep one coordinate: `"lon"` or `"lat"`.
    Gcj02ToWgs84(Coordinate),
    /// Split on `sep` and keep part `index` (0-based).
    Split(SplitSpec),
    /// Replace every occurrence of `from` with `to`.
    Replace(ReplaceSpec),
}

/// `datetime = { formats = ["%Y-%m-%d %H:%M:%S"], timezone = "+08:00" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct DatetimeSpec {
    /// `chrono` formats tried in order, or `excel`; a format with `%z` carries its own offset.
    pub formats: Vec<String>,
    /// The offset of local times without one, e.g. `+08:00` (China Standard Time).
    pub timezone: String,
}

/// Which coordinate of a converted pair to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Coordinate {
    /// Longitude.
    Lon,
    /// Latitude.
    Lat,
}

/// `split = { sep = ",", index = 0 }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct SplitSpec {
    /// Separator.
    pub sep: String,
    /// Which part to keep (0-based); a missing part yields no value.
    pub index: usize,
}

/// `replace = { from = "（", to = "(" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ReplaceSpec {
    /// Text to replace.
    pub from: String,
    /// Replacement.
    pub to: String,
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

//! The runtime form of transforms: a source string in, a string or a violation out.

use chrono::NaiveDate;
use hutong_standard::{CodeList, checks};
use unicode_normalization::UnicodeNormalization;

use crate::{
    pseudonym::PseudonymKey,
    spec::{Legacy15Policy, UnknownPolicy},
};

/// A checked, ready-to-run transform.
#[derive(Debug, Clone)]
pub(crate) enum Transform {
    Trim,
    Nfkc,
    Upper,
    Date(Vec<String>),
    Code { list: Box<CodeList>, unknown: UnknownPolicy },
    Map { table: std::collections::BTreeMap<String, String>, unknown: UnknownPolicy },
    CitizenId(Legacy15Policy),
    Pseudonym,
}

/// Why a transform failed: a rule name and a message (never the raw value).
pub(crate) type Failure = (&'static str, String);

impl Transform {
    pub(crate) fn apply(&self, value: String, key: &PseudonymKey) -> Result<String, Failure> {
        match self {
            Self::Trim => Ok(value.trim_matches(|c: char| c.is_whitespace()).to_owned()),
            Self::Nfkc => Ok(value.nfkc().collect()),
            Self::Upper => Ok(value.to_ascii_uppercase()),
            Self::Date(formats) => formats
                .iter()
                .find_map(|f| NaiveDate::parse_from_str(&value, f).ok())
                .map(|d| d.format("%Y-%m-%d").to_string())
                .ok_or_else(|| ("adapter:date", format!("{value:?} is not a date in any of {formats:?}"))),
            Self::Code { list, unknown } => match list.lookup(&value) {
                Some(code) => Ok(code.code.clone()),
                None => unknown_value(unknown, value, &format!("code list {}", list.id)),
            },
            Self::Map { table, unknown } => match table.get(&value) {
                Some(code) => Ok(code.clone()),
                None => unknown_value(unknown, value, "the department code map"),
            },
            Self::CitizenId(policy) => {
                let value = value.to_ascii_uppercase();
                if value.len() == 15 && value.bytes().all(|b| b.is_ascii_digit()) {
                    return match policy {
                        Legacy15Policy::Convert => checks::gb11643_from_legacy15(&value)
                            .ok_or(("adapter:citizen-id", "cannot convert legacy number".to_owned())),
                        Legacy15Policy::Reject => Err((
                            "adapter:citizen-id",
                            "legacy 15-digit citizen ID; this adapter rejects them".to_owned(),
                        )),
                    };
                }
                Ok(value)
            }
            Self::Pseudonym => Ok(key.pseudonym(&value)),
        }
    }
}

fn unknown_value(policy: &UnknownPolicy, value: String, what: &str) -> Result<String, Failure> {
    match policy {
        UnknownPolicy::Reject => Err(("adapter:code", format!("{value:?} is not in {what}"))),
        UnknownPolicy::Keep => Ok(value),
        UnknownPolicy::Other(code) => Ok(code.clone()),
    }
}

use serde::{Deserialize, Serialize};

/// Why a record does not meet the standard (or could not be mapped to it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// JSON pointer to the offending value.
    pub pointer: String,
    /// The rule that failed, e.g. `required`, `format:gb11643`, `adapter:date`.
    pub rule: String,
    /// A message a person can act on.
    pub message: String,
}

impl Violation {
    /// A violation at `pointer` of `rule`.
    pub fn new(pointer: impl Into<String>, rule: impl Into<String>, message: impl Into<String>) -> Self {
        Self { pointer: pointer.into(), rule: rule.into(), message: message.into() }
    }
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pointer = if self.pointer.is_empty() { "/" } else { &self.pointer };
        write!(f, "{pointer} [{}]: {}", self.rule, self.message)
    }
}

//! Every rule a record can fail, with its meaning: the names a violation's `rule` carries (in
//! answers, on the dead-letter topic, in fixtures' `reject` lists). `docs/rules.md` is rendered
//! from this list (`hutong standard rules`); tests keep it complete: every rule name written in
//! the code, every validation keyword and format the standard uses, and every cross-field check
//! must be here.

use std::fmt::Write as _;

/// Where in the gateway's work a rule is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The submitted record itself, before any mapping.
    Record,
    /// The payload's bytes: size, charset, JSON.
    Payload,
    /// The department's adapter, mapping source fields to the standard.
    Adapter,
    /// The standard's JSON Schema, on the canonical record.
    Schema,
    /// The standard's cross-field checks (`x-consistency`).
    Consistency,
    /// Publishing to Kafka.
    Bus,
}

impl Stage {
    fn title(self) -> &'static str {
        match self {
            Self::Record => "The record (记录)",
            Self::Payload => "The payload (报文)",
            Self::Adapter => "The adapter (适配器映射)",
            Self::Schema => "The standard's schema (数据标准)",
            Self::Consistency => "The standard's cross-field checks (一致性校验)",
            Self::Bus => "Publishing (数据总线)",
        }
    }
}

/// One rule.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// The name a violation carries.
    pub name: &'static str,
    /// Where it is checked.
    pub stage: Stage,
    /// What failing it means and what to do about it.
    pub meaning: &'static str,
}

const fn rule(name: &'static str, stage: Stage, meaning: &'static str) -> Rule {
    Rule { name, stage, meaning }
}

/// Every rule, in the order a record meets them.
pub const RULES: &[Rule] = &[
    rule(
        "record:source-id",
        Stage::Record,
        "The record has no `source_id`: its identity in the department's system, which keys its facts and makes retries idempotent.",
    ),
    rule(
        "record:kind",
        Stage::Record,
        "The department has no adapter for the record's `kind` (check the spelling, or add the adapter).",
    ),
    rule("payload:size", Stage::Payload, "The payload is larger than `limits.max-payload-bytes`."),
    rule(
        "payload:charset",
        Stage::Payload,
        "The payload is not valid in its declared `charset` (UTF-8 by default; GBK/GB18030 must be declared), or the charset is unknown.",
    ),
    rule("payload:json", Stage::Payload, "The payload is not JSON, or not a JSON object."),
    rule("payload:depth", Stage::Payload, "The payload nests deeper than `limits.max-json-depth`."),
    rule(
        "adapter:when",
        Stage::Adapter,
        "A `when` condition of the adapter failed to evaluate on this record (the message names the output or field).",
    ),
    rule("adapter:expr", Stage::Adapter, "A computed value (`expr`) failed to evaluate on this record."),
    rule(
        "adapter:type",
        Stage::Adapter,
        "A source value has the wrong JSON type (an object or array where a string or number is mapped), or does not convert to the field's `as` type.",
    ),
    rule("adapter:date", Stage::Adapter, "A source value is not a date in any of the field's declared formats."),
    rule(
        "adapter:datetime",
        Stage::Adapter,
        "A source value is not a date-time in any of the field's declared formats.",
    ),
    rule(
        "adapter:citizen-id",
        Stage::Adapter,
        "A legacy 15-digit citizen ID could not be converted, or sex or birth date were to be derived from an invalid ID.",
    ),
    rule("adapter:phone", Stage::Adapter, "Not a Chinese mobile number, nor a landline with its area code."),
    rule("adapter:coordinates", Stage::Adapter, "Not a `lon,lat` pair."),
    rule(
        "adapter:code",
        Stage::Adapter,
        "A source value is in neither the field's code map nor its code list, and the field's unknown-value policy is `reject`.",
    ),
    rule("entity", Stage::Schema, "The adapter produced an entity the standard does not define."),
    rule(
        "required",
        Stage::Schema,
        "A required field is missing; the pointer is the object that lacks it (the message names the field).",
    ),
    rule("type", Stage::Schema, "A value has the wrong JSON type."),
    rule(
        "additionalProperties",
        Stage::Schema,
        "A field the standard does not define (the adapter maps to a name that is not in the entity).",
    ),
    rule("const", Stage::Schema, "A value differs from the one the standard fixes."),
    rule("enum", Stage::Schema, "A value is not one of those the standard allows."),
    rule(
        "pattern",
        Stage::Schema,
        "A value does not have the standard's form (e.g. a 64-hex entity key, a grid code).",
    ),
    rule("minLength", Stage::Schema, "A text is shorter than the standard allows (an empty name …)."),
    rule("maxLength", Stage::Schema, "A text is longer than the standard allows."),
    rule("minimum", Stage::Schema, "A number is below the standard's minimum."),
    rule("exclusiveMinimum", Stage::Schema, "A number is not above the standard's lower bound."),
    rule("maximum", Stage::Schema, "A number is above the standard's maximum."),
    rule("minItems", Stage::Schema, "A list has fewer elements than the standard requires."),
    rule("maxItems", Stage::Schema, "A list has more elements than the standard allows."),
    rule("uniqueItems", Stage::Schema, "A list repeats an element."),
    rule("minProperties", Stage::Schema, "An object has fewer fields than the standard requires."),
    rule(
        "x-code-list",
        Stage::Schema,
        "A code is not in the field's national or local code list (`schemas/codes/`); a new department's id, for instance, must be in `codes/department.json`.",
    ),
    rule(
        "format:gb11643",
        Stage::Schema,
        "Not a valid citizen identity number (GB 11643): 18 characters, a real birth date, a known province, the ISO 7064 MOD 11-2 check character. The message says which part fails, never the number.",
    ),
    rule(
        "format:gb32100",
        Stage::Schema,
        "Not a valid unified social credit code (GB 32100): MOD 31 check, with the embedded GB 11714 organisation code's check.",
    ),
    rule("format:cn-phone", Stage::Schema, "Not a Chinese mobile number or landline with area code."),
    rule(
        "format:division-code",
        Stage::Schema,
        "Not a code of the administrative division list (GB/T 2260 and the statistical codes down to village/community); a retired or mistyped code fails here and, with `x-code-list`, under a second rule too.",
    ),
    rule("format:date", Stage::Schema, "Not an ISO 8601 full date (`YYYY-MM-DD`)."),
    rule("format:date-time", Stage::Schema, "Not an RFC 3339 date-time with its offset."),
    rule("format:email", Stage::Schema, "Not an e-mail address."),
    rule(
        "consistency:citizen-id-sex",
        Stage::Consistency,
        "The sex contradicts the citizen ID's 17th digit (odd 1 男, even 2 女); sex 0 and 9 are not compared. Rejected by the shipped standard.",
    ),
    rule(
        "consistency:citizen-id-birth-date",
        Stage::Consistency,
        "The birth date contradicts the citizen ID's digits 7-14. Flagged by the shipped standard: the record is published, the rule is in its `ce_flags` header and the answer's warnings.",
    ),
    rule(
        "bus:refused",
        Stage::Bus,
        "Kafka refused the record for good (e.g. larger than the topic's `max.message.bytes`); the rest of the batch is unaffected.",
    ),
];

/// The rule named `name`, if there is one.
pub fn find(name: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.name == name)
}

/// `docs/rules.md`: every rule by stage, with its meaning.
pub fn render_markdown() -> String {
    let mut out = String::from(
        "# Rules a record can fail\n\nGenerated by `hutong standard rules` from the code (`crates/hutong-standard/src/rules.rs`); do not edit by hand (a test keeps it in sync, and another that every rule the code reports is listed).\n\nA violation names its **pointer** (a JSON pointer into the canonical record; empty for the record as a whole), its **rule** and a message; a fixture's `reject` list names pointer and rule. Several rules can fail at once: a division code that is not in the list fails both `format:division-code` and `x-code-list`.\n",
    );
    let stages = [Stage::Record, Stage::Payload, Stage::Adapter, Stage::Schema, Stage::Consistency, Stage::Bus];
    for stage in stages {
        let _ = writeln!(out, "\n## {}\n\n| rule | meaning |\n| --- | --- |", stage.title());
        for r in RULES.iter().filter(|r| r.stage == stage) {
            let _ = writeln!(out, "| `{}` | {} |", r.name, r.meaning);
        }
    }
    out
}

//! The policy file: who may do what. Deny by default: it lists each
//! department's source kinds and each admin identity's operations; anything
//! else is refused.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    path::{Path, PathBuf},
};

use serde::Deserialize;
use sha2::{Digest, Sha256};

/// Why a policy file was refused.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The file could not be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The text is not a valid policy.
    #[error("{0}")]
    Invalid(String),
    /// A certificate whose names map to more than one identity.
    #[error("the certificate's names map to more than one identity")]
    AmbiguousCertificate,
    /// The file is not a valid policy.
    #[error("{}: {message}", path.display())]
    InFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// The admin operations a policy may grant: the `hutong.v1.Admin` RPCs, and the console's reads
/// that have no RPC (a rejected record, masked: `ViewDeadLetter`; the audit trails: `ReadAudit`).
pub const ADMIN_OPERATIONS: &[&str] = &[
    "ValidateRecord",
    "ListSchemas",
    "GetSchema",
    "CheckCompatibility",
    "ListAdapters",
    "ViewDeadLetter",
    "ReadAudit",
];

/// A verified caller.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Principal {
    /// A department submitting records.
    Department(String),
    /// An administrator calling admin operations.
    Admin(String),
    /// An integrator consuming shared data (智慧社区平台, a street office's app …): it reads
    /// only what its grants cover.
    Consumer(String),
}

impl Principal {
    /// Its name in the policy file.
    pub fn name(&self) -> &str {
        match self {
            Self::Department(n) | Self::Admin(n) | Self::Consumer(n) => n,
        }
    }

    /// `department`, `admin` or `consumer`.
    pub fn role(&self) -> &'static str {
        match self {
            Self::Department(_) => "department",
            Self::Admin(_) => "admin",
            Self::Consumer(_) => "consumer",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct PolicyFile {
    version: u32,
    #[serde(default)]
    departments: BTreeMap<String, Rule>,
    #[serde(default)]
    admins: BTreeMap<String, Rule>,
    #[serde(default)]
    consumers: BTreeMap<String, Rule>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct Rule {
    /// A DNS or URI subject alternative name, or the subject common name, of the client certificate.
    certificate: Option<String>,
    /// SHA-256 (hex) of the bearer token (token mode only).
    token_sha256: Option<String>,
    /// Departments: the source kinds it may submit.
    #[serde(default)]
    kinds: Vec<String>,
    /// Admins: the operations it may call (`*` for all).
    #[serde(default)]
    operations: Vec<String>,
}

/// One identity of the policy, for tools (`hutong certs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyIdentity {
    /// The principal.
    pub principal: Principal,
    /// The certificate name it is matched by, if any.
    pub certificate: Option<String>,
}

/// The authorisation policy: deny by default.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    by_certificate: HashMap<String, Principal>,
    by_token: HashMap<String, Principal>,
    kinds: HashMap<String, BTreeSet<String>>,
    operations: HashMap<String, BTreeSet<String>>,
    identities: Vec<PolicyIdentity>,
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// SHA-256 hex of a bearer token, as the policy file stores it.
pub fn token_sha256(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl Policy {
    /// Reads and checks a policy file.
    pub fn load(path: &Path) -> Result<Self, PolicyError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| PolicyError::Read { path: path.to_owned(), source })?;
        Self::parse(&text).map_err(|e| PolicyError::InFile { path: path.to_owned(), message: e.to_string() })
    }

    /// Parses and checks policy text.
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        Self::parse_text(text).map_err(PolicyError::Invalid)
    }

    fn parse_text(text: &str) -> Result<Self, String> {
        let file: PolicyFile = toml::from_str(text).map_err(|e| e.to_string())?;
        if file.version != 1 {
            return Err(format!("version {} is not supported (expected 1)", file.version));
        }
        let mut p = Self::default();
        let entries = file
            .departments
            .into_iter()
            .map(|(n, r)| (Principal::Department(n), r))
            .chain(file.admins.into_iter().map(|(n, r)| (Principal::Admin(n), r)))
            .chain(file.consumers.into_iter().map(|(n, r)| (Principal::Consumer(n), r)));
        for (principal, rule) in entries {
            let name = principal.name().to_owned();
            if !valid_name(&name) {
                return Err(format!("{} {name:?}: names are 1-64 of [a-z0-9_-]", principal.role()));
            }
            match &principal {
                Principal::Department(_) => {
                    if !rule.operations.is_empty() {
                        return Err(format!("department {name}: operations are for admins"));
                    }
                    p.kinds.insert(name.clone(), rule.kinds.iter().cloned().collect());
                }
                Principal::Admin(_) => {
                    if !rule.kinds.is_empty() {
                        return Err(format!("admin {name}: kinds are for departments"));
                    }
                    for op in &rule.operations {
                        if op != "*" && !ADMIN_OPERATIONS.contains(&op.as_str()) {
                            return Err(format!(
                                "admin {name}: unknown operation {op:?} (one of {}, or *)",
                                ADMIN_OPERATIONS.join(", ")
                            ));
                        }
                    }
                    p.operations.insert(name.clone(), rule.operations.iter().cloned().collect());
                }
                Principal::Consumer(_) => {
                    if !rule.kinds.is_empty() || !rule.operations.is_empty() {
                        return Err(format!(
                            "consumer {name}: kinds and operations are for departments and admins; a consumer's \
                             access is its grants (hutong access request)"
                        ));
                    }
                }
            }
            if let Some(c) = &rule.certificate
                && let Some(other) = p.by_certificate.insert(c.clone(), principal.clone())
            {
                return Err(format!("certificate {c:?} names both {} and {}", other.name(), name));
            }
            if let Some(t) = &rule.token_sha256 {
                let t = t.to_ascii_lowercase();
                if t.len() != 64 || !t.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(format!("{name}: token-sha256 must be 64 hex digits"));
                }
                if p.by_token.insert(t, principal.clone()).is_some() {
                    return Err(format!("{name}: token-sha256 is used twice"));
                }
            }
            p.identities.push(PolicyIdentity { principal, certificate: rule.certificate });
        }
        Ok(p)
    }

    /// Every identity the policy names.
    pub fn identities(&self) -> &[PolicyIdentity] {
        &self.identities
    }

    /// Whether `department` may submit records of `kind`.
    pub fn may_submit(&self, department: &str, kind: &str) -> bool {
        self.kinds.get(department).is_some_and(|k| k.contains(kind))
    }

    /// Whether admin `admin` may call `operation`.
    pub fn may_call(&self, admin: &str, operation: &str) -> bool {
        self.operations.get(admin).is_some_and(|o| o.contains(operation) || o.contains("*"))
    }

    /// The principal of a bearer token (token mode).
    pub fn by_token(&self, token: &str) -> Option<&Principal> {
        self.by_token.get(&token_sha256(token))
    }

    /// Whether any department of the policy has `kind`.
    pub fn knows_kind(&self, kind: &str) -> bool {
        self.kinds.values().any(|k| k.contains(kind))
    }

    /// The one principal the certificate names map to; an error when they map to several.
    pub fn by_names(&self, names: &[String]) -> Result<Option<&Principal>, PolicyError> {
        let mut found: Option<&Principal> = None;
        for n in names {
            if let Some(p) = self.by_certificate.get(n) {
                if found.is_some_and(|f| f != p) {
                    return Err(PolicyError::AmbiguousCertificate);
                }
                found = Some(p);
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = r#"
        version = 1
        [departments.gongan]
        certificate = "gongan.departments.hutong.local"
        kinds = ["household_registration"]
        token-sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        [admins.ops]
        certificate = "ops.admins.hutong.local"
        operations = ["ListSchemas"]
        [admins.root]
        operations = ["*"]
    "#;

    #[test]
    fn policy_denies_by_default() {
        let p = Policy::parse(POLICY).unwrap();
        assert!(p.may_submit("gongan", "household_registration"));
        assert!(!p.may_submit("gongan", "social_assistance"));
        assert!(!p.may_submit("minzheng", "household_registration"));
        assert!(p.may_call("ops", "ListSchemas"));
        assert!(!p.may_call("ops", "ValidateRecord"));
        assert!(p.may_call("root", "ValidateRecord"));
        assert!(!p.may_call("gongan", "ListSchemas"));
        assert_eq!(
            p.by_names(&["x".into(), "gongan.departments.hutong.local".into()]).unwrap(),
            Some(&Principal::Department("gongan".into()))
        );
        assert_eq!(p.by_token("test"), Some(&Principal::Department("gongan".into())));
        assert_eq!(p.identities().len(), 3);
    }

    #[test]
    fn policy_mistakes_are_errors() {
        for (bad, why) in [
            ("version = 2", "version 2"),
            ("version = 1\n[admins.a]\noperations = [\"DropTopic\"]", "unknown operation"),
            ("version = 1\n[departments.a]\noperations = [\"ListSchemas\"]", "for admins"),
            ("version = 1\n[departments.A]\nkinds = []", "names are"),
            ("version = 1\n[departments.a]\nkind = []", "unknown field"),
            ("version = 1\n[departments.a]\ncertificate = \"x\"\n[admins.b]\ncertificate = \"x\"", "both"),
            ("version = 1\n[departments.a]\ntoken-sha256 = \"abc\"", "64 hex"),
        ] {
            let err = Policy::parse(bad).unwrap_err().to_string();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }
}

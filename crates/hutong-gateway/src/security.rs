//! Who is calling and what they may do.
//!
//! Identity comes from the verified client certificate (mTLS) or, in the
//! development token mode, from a bearer token whose SHA-256 the policy file
//! holds. Authorisation is deny by default: the policy file lists each
//! department's source kinds and each admin identity's operations; anything
//! else is refused with `PERMISSION_DENIED` and audited.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use tonic::{Request, Status};

use crate::audit::Auditor;

/// How callers prove who they are (`auth.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthMode {
    /// Client certificates signed by the deployment's CA (the default).
    #[default]
    Mtls,
    /// Static bearer tokens, stored hashed in the policy file: development and trials only.
    Token,
}

/// The admin operations a policy may grant (the `hutong.v1.Admin` RPCs).
pub const ADMIN_OPERATIONS: &[&str] =
    &["ValidateRecord", "ListSchemas", "GetSchema", "CheckCompatibility", "ListAdapters"];

/// A verified caller.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Principal {
    /// A department submitting records.
    Department(String),
    /// An administrator calling admin operations.
    Admin(String),
}

impl Principal {
    /// Its name in the policy file.
    pub fn name(&self) -> &str {
        match self {
            Self::Department(n) | Self::Admin(n) => n,
        }
    }

    /// `department` or `admin`.
    pub fn role(&self) -> &'static str {
        match self {
            Self::Department(_) => "department",
            Self::Admin(_) => "admin",
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
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses and checks policy text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let file: PolicyFile = toml::from_str(text).map_err(|e| e.to_string())?;
        if file.version != 1 {
            return Err(format!("version {} is not supported (expected 1)", file.version));
        }
        let mut p = Self::default();
        let entries = file
            .departments
            .into_iter()
            .map(|(n, r)| (Principal::Department(n), r))
            .chain(file.admins.into_iter().map(|(n, r)| (Principal::Admin(n), r)));
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

    /// The one principal the certificate names map to. Err when they map to several.
    fn by_names(&self, names: &[String]) -> Result<Option<&Principal>, String> {
        let mut found: Option<&Principal> = None;
        for n in names {
            if let Some(p) = self.by_certificate.get(n) {
                if found.is_some_and(|f| f != p) {
                    return Err("the certificate's names map to more than one identity".to_owned());
                }
                found = Some(p);
            }
        }
        Ok(found)
    }
}

/// The names a certificate may be matched by: DNS and URI subject alternative
/// names, then the subject common names.
pub fn certificate_names(der: &[u8]) -> Result<Vec<String>, String> {
    use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| format!("unreadable certificate: {e}"))?;
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            match n {
                GeneralName::DNSName(d) | GeneralName::URI(d) => names.push((*d).to_owned()),
                _ => {}
            }
        }
    }
    for cn in cert.subject().iter_common_name() {
        if let Ok(s) = cn.as_str() {
            names.push(s.to_owned());
        }
    }
    Ok(names)
}

/// The authentication settings (`[auth]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct AuthConfig {
    /// `mtls` (default) or `token` (development only).
    pub mode: AuthMode,
    /// The policy file: identities, and what each may do.
    pub policy_file: PathBuf,
    /// CA bundle (PEM) that signs client certificates.
    pub ca_file: Option<PathBuf>,
    /// The gateway's certificate chain (PEM).
    pub cert_file: Option<PathBuf>,
    /// The gateway's private key (PEM).
    pub key_file: Option<PathBuf>,
    /// Certificate revocation lists (PEM) of the CA; re-read on SIGHUP.
    pub crl_files: Vec<PathBuf>,
    /// Longest a TLS handshake may take, in milliseconds.
    pub handshake_timeout_ms: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            mode: AuthMode::Mtls,
            policy_file: PathBuf::from("policy.toml"),
            ca_file: None,
            cert_file: None,
            key_file: None,
            crl_files: Vec::new(),
            handshake_timeout_ms: 10_000,
        }
    }
}

/// Authentication and authorisation of every call, with every refusal audited.
pub struct Guard {
    mode: AuthMode,
    policy: arc_swap::ArcSwap<Policy>,
    auditor: Arc<Auditor>,
    /// Certificate (DER) → principal, so a connection's certificate is parsed once.
    seen: Mutex<HashMap<Vec<u8>, Result<Principal, String>>>,
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard").field("mode", &self.mode).finish_non_exhaustive()
    }
}

/// The `authorization` metadata of token mode.
const AUTHORIZATION: &str = "authorization";

impl Guard {
    /// A guard applying `policy` to callers identified by `mode`.
    pub fn new(mode: AuthMode, policy: Policy, auditor: Arc<Auditor>) -> Self {
        Self { mode, policy: arc_swap::ArcSwap::from_pointee(policy), auditor, seen: Mutex::default() }
    }

    /// The audit log every decision goes to.
    pub fn auditor(&self) -> &Arc<Auditor> {
        &self.auditor
    }

    /// Replaces the policy (SIGHUP).
    pub fn set_policy(&self, policy: Policy) {
        let mut seen = self.seen.lock().expect("identity cache");
        self.policy.store(Arc::new(policy));
        seen.clear();
    }

    /// Any identity of the policy (for reflection): anonymous callers are refused and audited.
    pub fn authenticated<T>(&self, request: &Request<T>, action: &str) -> Result<(), Status> {
        self.identify(request).map(|_| ()).inspect_err(|s| self.refuse(request, None, action, s))
    }

    fn identify<T>(&self, request: &Request<T>) -> Result<Principal, Status> {
        match self.mode {
            AuthMode::Mtls => {
                let certs = request.peer_certs().filter(|c| !c.is_empty()).ok_or_else(|| {
                    Status::unauthenticated("a client certificate signed by the deployment's CA is required")
                })?;
                let der = certs[0].as_ref();
                // The policy is read under the cache's lock: a reload (which clears the cache under
                // the same lock) cannot interleave and leave an entry of the old policy behind.
                let mut seen = self.seen.lock().expect("identity cache");
                let policy = self.policy.load();
                if let Some(known) = seen.get(der) {
                    return known.clone().map_err(Status::permission_denied);
                }
                let found = certificate_names(der).and_then(|names| {
                    policy.by_names(&names)?.cloned().ok_or_else(|| {
                        format!("certificate {} is not in the policy", names.first().map_or("", String::as_str))
                    })
                });
                if seen.len() > 10_000 {
                    seen.clear();
                }
                seen.insert(der.to_vec(), found.clone());
                found.map_err(Status::permission_denied)
            }
            AuthMode::Token => {
                let policy = self.policy.load();
                let token = request
                    .metadata()
                    .get(AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer "))
                    .ok_or_else(|| Status::unauthenticated("an `authorization: Bearer <token>` is required"))?;
                policy
                    .by_token
                    .get(&token_sha256(token.trim()))
                    .cloned()
                    .ok_or_else(|| Status::unauthenticated("unknown token"))
            }
        }
    }

    fn refuse<T>(&self, request: &Request<T>, who: Option<&Principal>, action: &str, status: &Status) {
        self.audit_denial(request.remote_addr(), who.map(|p| (p.name(), p.role())), action, status);
    }

    fn audit_denial(
        &self,
        peer: Option<std::net::SocketAddr>,
        who: Option<(&str, &str)>,
        action: &str,
        status: &Status,
    ) {
        self.auditor.record(json!({
            "type": "denied",
            "principal": who.map(|w| w.0),
            "role": who.map(|w| w.1),
            "peer": peer.map(|a| a.to_string()),
            "action": action,
            "code": format!("{:?}", status.code()),
            "reason": status.message(),
        }));
    }

    /// The department calling `action` (`Submit`, `SubmitStream`); admin identities are refused.
    pub fn department<T>(&self, request: &Request<T>, action: &str) -> Result<String, Status> {
        let principal = self.identify(request).inspect_err(|s| self.refuse(request, None, action, s))?;
        match principal {
            Principal::Department(d) => Ok(d),
            Principal::Admin(_) => {
                let s =
                    Status::permission_denied(format!("{} is an admin identity, not a department", principal.name()));
                self.refuse(request, Some(&principal), action, &s);
                Err(s)
            }
        }
    }

    /// Whether every kind of a batch is granted to `department`; a refusal is
    /// audited. A kind nobody has (neither the policy nor `is_known`, the
    /// adapters) is let through: the pipeline rejects such records one by one
    /// (`record:kind`), so one typo does not cost the rest of the batch.
    pub fn check_kinds<'k>(
        &self,
        department: &str,
        peer: Option<std::net::SocketAddr>,
        action: &str,
        kinds: impl IntoIterator<Item = &'k str>,
        is_known: impl Fn(&str) -> bool,
    ) -> Result<(), Status> {
        let policy = self.policy.load();
        for kind in kinds {
            let known = policy.kinds.values().any(|k| k.contains(kind)) || is_known(kind);
            if known && !policy.may_submit(department, kind) {
                let s = Status::permission_denied(format!("department {department} may not submit kind {kind:?}"));
                self.audit_denial(peer, Some((department, "department")), &format!("{action} {kind}"), &s);
                return Err(s);
            }
        }
        Ok(())
    }

    /// The admin identity calling `operation`, when the policy grants it.
    pub fn admin<T>(&self, request: &Request<T>, operation: &str) -> Result<String, Status> {
        let principal = self.identify(request).inspect_err(|s| self.refuse(request, None, operation, s))?;
        let allowed = match &principal {
            Principal::Admin(a) => self.policy.load().may_call(a, operation),
            Principal::Department(_) => false,
        };
        if !allowed {
            let s = Status::permission_denied(format!(
                "{} {} may not call {operation}",
                principal.role(),
                principal.name()
            ));
            self.refuse(request, Some(&principal), operation, &s);
            return Err(s);
        }
        Ok(principal.name().to_owned())
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
        assert_eq!(p.by_token.get(&token_sha256("test")), Some(&Principal::Department("gongan".into())));
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
            let err = Policy::parse(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }
}

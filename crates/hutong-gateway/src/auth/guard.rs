//! Authentication and authorisation of every call: the identity from the
//! verified client certificate (mTLS) or, in the development token mode, a
//! bearer token whose SHA-256 the policy holds; then the policy; every
//! refusal audited.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use tonic::{Request, Status};

use hutong_config::{AuthMode, Policy, Principal};

use crate::{
    ErrorCode,
    audit::{AuditEvent, Auditor},
};

/// The names a certificate may be matched by: DNS and URI subject alternative
/// names, then the subject common names; `Err` says why it is unreadable.
fn certificate_names(der: &[u8]) -> Result<Vec<String>, String> {
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
                    ErrorCode::Unauthenticated.status("a client certificate signed by the deployment's CA is required")
                })?;
                let der = certs[0].as_ref();
                // The policy is read under the cache's lock: a reload (which clears the cache under
                // the same lock) cannot interleave and leave an entry of the old policy behind.
                let mut seen = self.seen.lock().expect("identity cache");
                let policy = self.policy.load();
                if let Some(known) = seen.get(der) {
                    return known.clone().map_err(|m| ErrorCode::PermissionDenied.status(m));
                }
                let found = certificate_names(der).and_then(|names| {
                    policy.by_names(&names).map_err(|e| e.to_string())?.cloned().ok_or_else(|| {
                        format!("certificate {} is not in the policy", names.first().map_or("", String::as_str))
                    })
                });
                if seen.len() > 10_000 {
                    seen.clear();
                }
                seen.insert(der.to_vec(), found.clone());
                found.map_err(|m| ErrorCode::PermissionDenied.status(m))
            }
            AuthMode::Token => {
                let policy = self.policy.load();
                let token = request
                    .metadata()
                    .get(AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer "))
                    .ok_or_else(|| {
                        ErrorCode::Unauthenticated.status("an `authorization: Bearer <token>` is required")
                    })?;
                policy.by_token(token.trim()).cloned().ok_or_else(|| ErrorCode::Unauthenticated.status("unknown token"))
            }
        }
    }

    fn refuse<T>(&self, request: &Request<T>, who: Option<&Principal>, action: &str, status: &Status) {
        self.audit_denial(request.remote_addr(), who.map(|p| (p.name(), p.role())), action, status);
    }

    fn audit_denial(
        &self,
        peer: Option<std::net::SocketAddr>,
        who: Option<(&str, &'static str)>,
        action: &str,
        status: &Status,
    ) {
        self.auditor.record(AuditEvent::Denied {
            principal: who.map(|w| w.0.to_owned()),
            role: who.map(|w| w.1),
            peer: peer.map(|a| a.to_string()),
            action: action.to_owned(),
            code: format!("{:?}", status.code()),
            reason: status.message().to_owned(),
        });
    }

    /// The department calling `action` (`Submit`, `SubmitStream`); admin identities are refused.
    pub fn department<T>(&self, request: &Request<T>, action: &str) -> Result<String, Status> {
        let principal = self.identify(request).inspect_err(|s| self.refuse(request, None, action, s))?;
        match principal {
            Principal::Department(d) => Ok(d),
            Principal::Admin(_) | Principal::Consumer(_) => {
                let s = ErrorCode::PermissionDenied.status(format!(
                    "{} is {} identity, not a department",
                    principal.name(),
                    if principal.role() == "admin" { "an admin" } else { "a consumer" }
                ));
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
            let known = policy.knows_kind(kind) || is_known(kind);
            if known && !policy.may_submit(department, kind) {
                let s =
                    ErrorCode::PermissionDenied.status(format!("department {department} may not submit kind {kind:?}"));
                self.audit_denial(peer, Some((department, "department")), &format!("{action} {kind}"), &s);
                return Err(s);
            }
        }
        Ok(())
    }

    /// Any identity of the policy reading shared data (`action`); anonymous callers are refused
    /// and audited.
    pub fn reader<T>(&self, request: &Request<T>, action: &str) -> Result<Principal, Status> {
        self.identify(request).inspect_err(|s| self.refuse(request, None, action, s))
    }

    /// The admin identity calling `operation`, when the policy grants it.
    pub fn admin<T>(&self, request: &Request<T>, operation: &str) -> Result<String, Status> {
        let principal = self.identify(request).inspect_err(|s| self.refuse(request, None, operation, s))?;
        let allowed = match &principal {
            Principal::Admin(a) => self.policy.load().may_call(a, operation),
            Principal::Department(_) | Principal::Consumer(_) => false,
        };
        if !allowed {
            let s = ErrorCode::PermissionDenied.status(format!(
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

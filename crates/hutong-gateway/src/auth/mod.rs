//! Who is calling and what they may do: the guard every call passes
//! ([`Guard`], applying the policy file of `hutong-config`), and TLS of the
//! gRPC port.

mod guard;
pub(crate) mod tls;

use std::{sync::Arc, time::Duration};

use arc_swap::ArcSwap;
pub use guard::Guard;
use hutong_bus::Publisher;
use hutong_config::{Policy, PolicyError};
use tracing::warn;

use crate::{AuthMode, GatewayConfig, Metrics, audit::Auditor};

/// Why the policy, the TLS files or the audit log could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    /// The policy file is refused.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// A TLS file could not be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A TLS file holds no (valid) PEM of what it should.
    #[error("{}: {message}", path.display())]
    Pem {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A setting the mode needs is missing.
    #[error("{0} required")]
    Missing(&'static str),
    /// rustls refused the configuration.
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
    /// The client-certificate verifier could not be built.
    #[error("client verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// The audit log could not be opened.
    #[error("audit log: {0}")]
    Audit(#[from] hutong_audit::AuditError),
    /// A reload cannot turn TLS off.
    #[error("TLS cannot be turned off by a reload")]
    TlsOff,
}

/// Who may call, over which transport: what the server needs besides the pipeline.
#[derive(Clone)]
pub struct Security {
    /// Authentication, authorisation and the audit trail.
    pub guard: Arc<Guard>,
    /// The TLS configuration (swapped on SIGHUP); `None` serves plaintext (token mode only).
    pub tls: Option<Arc<ArcSwap<rustls::ServerConfig>>>,
    /// Longest a TLS handshake may take.
    pub handshake_timeout: Duration,
}

impl Security {
    /// Loads the policy, the TLS files and opens the audit log of `config`;
    /// audit entries are copied to the audit topic through `publisher`.
    pub fn load(
        config: &GatewayConfig,
        publisher: Option<Arc<dyn Publisher>>,
        metrics: &Metrics,
    ) -> Result<Self, SecurityError> {
        let policy = Policy::load(&config.auth.policy_file)?;
        let log = hutong_audit::AuditLog::open(&config.audit.dir, config.audit.retention_days)?;
        let topic = publisher.filter(|_| config.audit.publish).map(|p| (config.kafka.topics().audit(), p));
        let auditor = Arc::new(Auditor::new(log, topic, metrics));
        let tls = tls::server_config(&config.auth)?.map(|c| Arc::new(ArcSwap::new(c)));
        if config.auth.mode == AuthMode::Token {
            let banner = "TOKEN MODE: callers are identified by static bearer tokens, not certificates. \
                          For development and trials only; never in production.";
            eprintln!("\n!!! {banner}{} !!!\n", if tls.is_none() { " The port is PLAINTEXT." } else { "" });
            warn!(plaintext = tls.is_none(), "{banner}");
        }
        Ok(Self {
            guard: Arc::new(Guard::new(config.auth.mode, policy, auditor)),
            tls,
            handshake_timeout: Duration::from_millis(config.auth.handshake_timeout_ms),
        })
    }

    /// Plaintext with development tokens and no audit file: in-process tests only.
    pub fn plaintext_tokens(policy: Policy) -> Self {
        Self {
            guard: Arc::new(Guard::new(AuthMode::Token, policy, Arc::new(Auditor::disabled()))),
            tls: None,
            handshake_timeout: Duration::from_secs(10),
        }
    }

    /// Re-reads the policy file and the TLS files (new CRLs); keeps the
    /// working ones when anything fails to load.
    pub fn reload(&self, config: &GatewayConfig) -> Result<(), SecurityError> {
        let policy = Policy::load(&config.auth.policy_file)?;
        if let Some(tls) = &self.tls {
            let fresh = tls::server_config(&config.auth)?.ok_or(SecurityError::TlsOff)?;
            tls.store(fresh);
        }
        self.guard.set_policy(policy);
        Ok(())
    }
}

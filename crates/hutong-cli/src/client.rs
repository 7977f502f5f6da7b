//! How the CLI reaches a gateway: address, and the identity it presents
//! (a client certificate from `hutong certs`, or a development token).

use std::path::PathBuf;

use hutong_client::ClientAuth;
use tonic::transport::Channel;

/// Gateway address and caller identity, shared by every command that calls the gateway.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ConnectArgs {
    /// Gateway address: `https://…` (TLS; the default) or `http://…` (token mode without TLS).
    /// Several replicas, comma-separated: `ingest` spreads its batches over them and sends a
    /// batch again to the next when its gateway fails; other commands ask the first that answers.
    #[arg(long, default_value = "https://127.0.0.1:50051", env = "HUTONG_ADDR")]
    pub(crate) addr: String,
    #[command(flatten)]
    identity: IdentityArgs,
}

/// The profile service's address and the caller identity (`hutong profile …`).
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ProfilesConnectArgs {
    /// Profile service address (`profiles.listen`): `https://…` or `http://…` (token mode).
    #[arg(long, default_value = "https://127.0.0.1:50061", env = "HUTONG_PROFILES_ADDR")]
    pub(crate) addr: String,
    #[command(flatten)]
    identity: IdentityArgs,
}

impl ConnectArgs {
    /// The identity named with `--as`, if any (the department, for a department's export).
    pub(crate) fn identity_name(&self) -> Option<&str> {
        self.identity.identity.as_deref()
    }
}

impl ProfilesConnectArgs {
    /// A channel to the profile service.
    pub(crate) async fn channel(&self) -> anyhow::Result<Channel> {
        Ok(self.identity.auth().connect(&self.addr).await?)
    }
}

/// Where to ask the consumer service and how to print the answer (`hutong events`, `hutong
/// access` …).
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Ask {
    #[command(flatten)]
    pub(crate) connect: ProfilesConnectArgs,
    /// Print the answer as JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

impl Ask {
    /// A channel to the consumer service.
    pub(crate) async fn channel(&self) -> anyhow::Result<Channel> {
        self.connect.channel().await
    }
}

/// The identity a command presents.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct IdentityArgs {
    /// Directory made by `hutong certs`: `ca.pem`, and `<identity>.pem` / `<identity>.key`.
    #[arg(long, env = "HUTONG_PKI")]
    pki: Option<PathBuf>,
    /// The identity in `--pki` to present: a department (e.g. `gongan`) or an admin name.
    #[arg(long = "as", env = "HUTONG_AS", value_name = "IDENTITY")]
    identity: Option<String>,
    /// CA bundle (PEM) the gateway's certificate must chain to (overrides `--pki`).
    #[arg(long, env = "HUTONG_CA")]
    ca: Option<PathBuf>,
    /// Client certificate (PEM) (overrides `--pki`/`--as`).
    #[arg(long, env = "HUTONG_CERT", requires = "key")]
    cert: Option<PathBuf>,
    /// Client private key (PEM).
    #[arg(long, env = "HUTONG_KEY", requires = "cert")]
    key: Option<PathBuf>,
    /// Bearer token, for a gateway in token mode (development only).
    #[arg(long, env = "HUTONG_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

impl ConnectArgs {
    /// The identity to present.
    pub(crate) fn auth(&self) -> ClientAuth {
        self.identity.auth()
    }

    /// The gateways `--addr` names.
    pub(crate) fn addresses(&self) -> Vec<&str> {
        self.addr.split(',').map(str::trim).filter(|a| !a.is_empty()).collect()
    }

    /// A channel to the first gateway of `--addr` that answers.
    pub(crate) async fn channel(&self) -> anyhow::Result<Channel> {
        let auth = self.auth();
        let mut last = None;
        for addr in self.addresses() {
            match auth.connect(addr).await {
                Ok(channel) => return Ok(channel),
                Err(e) => last = Some(e),
            }
        }
        Err(last.map_or_else(|| anyhow::anyhow!("--addr names no gateway"), anyhow::Error::from))
    }

    /// The identity `identity` of `--pki` (a department's certificate), for a command that
    /// submits for several departments (`hutong bench --mix`).
    pub(crate) fn auth_as(&self, identity: &str) -> anyhow::Result<ClientAuth> {
        let dir = self.identity.pki.as_deref().ok_or_else(|| {
            anyhow::anyhow!("submitting for {identity} needs --pki (HUTONG_PKI) with a certificate per department")
        })?;
        let cert = dir.join(format!("{identity}.pem"));
        anyhow::ensure!(
            cert.is_file(),
            "{} is missing: every department of the mix needs its certificate (`hutong certs init --policy` issues one for every department of the policy)",
            cert.display()
        );
        let mut auth = ClientAuth::from_pki(dir, Some(identity));
        if self.identity.ca.is_some() {
            auth.ca.clone_from(&self.identity.ca);
        }
        Ok(auth)
    }
}

impl IdentityArgs {
    /// The identity to present.
    pub(crate) fn auth(&self) -> ClientAuth {
        let mut auth = match &self.pki {
            Some(dir) => ClientAuth::from_pki(dir, self.identity.as_deref()),
            None => ClientAuth::default(),
        };
        if self.ca.is_some() {
            auth.ca.clone_from(&self.ca);
        }
        if self.cert.is_some() {
            auth.cert.clone_from(&self.cert);
            auth.key.clone_from(&self.key);
        }
        auth.token.clone_from(&self.token);
        auth
    }
}

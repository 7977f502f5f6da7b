//! Layered configuration: built-in defaults, then the file, then `HUTONG__` variables.

use std::path::Path;

use anyhow::Context as _;
use figment::{
    Figment,
    providers::{Env, Format as _, Serialized, Toml},
};
use hutong_gateway::GatewayConfig;

/// Loads the gateway configuration. Unknown keys (in the file or the
/// environment) are errors naming the key.
pub(crate) fn load(file: Option<&Path>) -> anyhow::Result<GatewayConfig> {
    let mut figment = Figment::from(Serialized::defaults(GatewayConfig::default()));
    if let Some(file) = file {
        anyhow::ensure!(file.is_file(), "config file {} does not exist", file.display());
        figment = figment.merge(Toml::file_exact(file));
    }
    figment = figment.merge(env_provider());
    figment.extract().context("invalid configuration")
}

/// `HUTONG__KAFKA__BOOTSTRAP_SERVERS` → `kafka.bootstrap-servers`.
fn env_provider() -> Env {
    Env::prefixed("HUTONG__").map(|k| k.as_str().replace("__", ".").replace('_', "-").into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail's error type
    fn layers_file_then_env_and_refuses_unknown_keys() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("hutong.toml", "listen = \"127.0.0.1:6000\"\n[kafka]\ntopic-prefix = \"t\"\n")?;
            jail.set_env("HUTONG__KAFKA__BOOTSTRAP_SERVERS", "10.0.0.1:9999");
            let c = load(Some(Path::new("hutong.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(c.listen.port(), 6000);
            assert_eq!(c.kafka.topic_prefix, "t");
            assert_eq!(c.kafka.bootstrap_servers, "10.0.0.1:9999");
            assert_eq!(c.kafka.partitions, 3, "defaults stay under the file");

            jail.create_file("bad.toml", "[kafka]\nbootstrap-server = \"x\"\n")?;
            let e = format!("{:#}", load(Some(Path::new("bad.toml"))).unwrap_err());
            assert!(e.contains("bootstrap-server"), "{e}");

            jail.set_env("HUTONG__LISTN", "1");
            let e = format!("{:#}", load(None).unwrap_err());
            assert!(e.contains("listn"), "{e}");
            Ok(())
        });
    }
}

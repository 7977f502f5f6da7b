//! The deployment an offline command reads (`--config`, `--schemas`), one
//! argument group shared by every such verb.

use std::path::PathBuf;

use hutong_config::ConfigFile;

/// The gateway configuration and the `schemas/` folder a command works on.
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct Deployment {
    /// The gateway's config file: its `schemas-dir`, topic prefix, limits, `[privacy]` topics and
    /// pseudonym key, read as `hutong serve` reads it (over the defaults, under `HUTONG__*` variables).
    #[arg(long, short)]
    pub(crate) config: Option<PathBuf>,
    /// The `schemas/` folder (overrides the config's `schemas-dir`; default `schemas`).
    #[arg(long)]
    pub(crate) schemas: Option<PathBuf>,
}

impl Deployment {
    /// The configuration file, with `--schemas` applied.
    pub(crate) fn load(&self) -> anyhow::Result<ConfigFile> {
        let mut file = ConfigFile::load(self.config.as_deref())?;
        if let Some(s) = &self.schemas {
            file.schemas_dir.clone_from(s);
        }
        Ok(file)
    }

    /// [`Self::load`] for a command that reads the standard: refused with a hint when the
    /// schemas folder holds none (run from another folder without `--schemas`).
    pub(crate) fn load_schemas(&self) -> anyhow::Result<ConfigFile> {
        let file = self.load()?;
        anyhow::ensure!(
            file.schemas_dir.join("standard").is_dir(),
            "{} holds no standard (no standard/ folder): give the schemas folder with --schemas DIR (or a \
             config whose schemas-dir names it with --config), or run from the folder that holds schemas/",
            file.schemas_dir.display()
        );
        Ok(file)
    }
}

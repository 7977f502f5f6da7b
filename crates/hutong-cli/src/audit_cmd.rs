//! `hutong audit`: check the audit trail's hash chain.

use std::{path::PathBuf, process::ExitCode};

#[derive(Debug, clap::Subcommand)]
pub(crate) enum AuditCommand {
    /// Verify the hash chain of an audit directory: any edited, deleted or reordered entry is reported with its
    /// file and line; exit status 1 then, 0 when the chain is intact.
    Verify {
        /// The audit directory (`audit.dir` of the gateway's config).
        #[arg(default_value = ".hutong/audit")]
        dir: PathBuf,
    },
}

pub(crate) fn run(cmd: AuditCommand) -> anyhow::Result<ExitCode> {
    let AuditCommand::Verify { dir } = cmd;
    match hutong_audit::verify(&dir) {
        Ok(v) => {
            println!(
                "{}: intact: {} entries (seq {}..{}) in {} file(s); head {}",
                dir.display(),
                v.entries,
                v.first_seq,
                v.last_seq,
                v.files,
                v.last_hash
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e @ hutong_audit::AuditError::Tampered { .. }) => {
            println!("{}: TAMPERED: {e}", dir.display());
            Ok(ExitCode::from(1))
        }
        Err(e) => Err(e.into()),
    }
}

//! A throw-away PostgreSQL cluster for the store tests: `initdb` in a temp dir, `pg_ctl start`
//! on a free port, stopped (and removed) when dropped. deploy/test.sh installs PostgreSQL from
//! Debian's packages when missing; without it these tests fail, they never skip.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail, ensure};

/// A running cluster.
#[derive(Debug)]
pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    running: bool,
    /// The server's certificate and key when it offers TLS.
    tls: Option<(PathBuf, PathBuf)>,
}

/// The server binaries: `HUTONG_PG_BIN`, else the newest `/usr/lib/postgresql/*/bin`.
pub fn pg_bin() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("HUTONG_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .context("PostgreSQL is not installed (/usr/lib/postgresql); deploy/test.sh installs it")?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|b| b.join("initdb").is_file())
        .collect();
    found.sort();
    found.pop().context("no /usr/lib/postgresql/*/bin/initdb; deploy/test.sh installs PostgreSQL")
}

/// Runs a server binary as the `postgres` user when we are root (initdb refuses root).
fn run_as_postgres(bin: &Path, args: &[&str]) -> anyhow::Result<std::process::Output> {
    let root = Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0")).unwrap_or(false);
    let mut cmd = if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin);
        c
    } else {
        Command::new(bin)
    };
    let out = cmd.args(args).output().with_context(|| format!("running {}", bin.display()))?;
    Ok(out)
}

impl Postgres {
    /// A new cluster on a free port, trust authentication on 127.0.0.1, database `postgres`.
    pub fn start() -> anyhow::Result<Self> {
        let bin = pg_bin()?;
        let dir = tempfile::Builder::new().prefix("hutong-pg-").tempdir()?;
        // The server runs as `postgres`: it must own its directory.
        let _ = Command::new("chown").args(["-R", "postgres:postgres"]).arg(dir.path()).status();
        let data = dir.path().join("data");
        let out = run_as_postgres(
            &bin.join("initdb"),
            &["-D", data.to_str().unwrap_or_default(), "-A", "trust", "-U", "postgres", "--no-sync"],
        )?;
        ensure!(out.status.success(), "initdb failed: {}", String::from_utf8_lossy(&out.stderr));
        let mut pg = Self { dir, bin, port: crate::free_port(), running: false, tls: None };
        pg.start_again()?;
        Ok(pg)
    }

    /// The same, offering TLS (`ssl = on`) with `pki`'s server certificate (`server.pem`,
    /// `server.key`: localhost and 127.0.0.1), which the server wants owned by it and private.
    pub fn start_tls(pki: &Path) -> anyhow::Result<Self> {
        let mut pg = Self::start()?;
        pg.stop()?;
        let (cert, key) = (pg.dir.path().join("server.pem"), pg.dir.path().join("server.key"));
        std::fs::copy(pki.join("server.pem"), &cert)?;
        std::fs::copy(pki.join("server.key"), &key)?;
        std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
        let _ = Command::new("chown").arg("postgres:postgres").arg(&cert).arg(&key).status();
        pg.tls = Some((cert, key));
        pg.start_again()?;
        Ok(pg)
    }

    /// Runs `sql` with psql (without TLS, so it is not one of the connections it counts) and
    /// gives the unaligned answer.
    pub fn psql(&self, sql: &str) -> anyhow::Result<String> {
        self.psql_in("postgres", sql)
    }

    /// [`Self::psql`] in `database` (one of [`Self::database`]).
    pub fn psql_in(&self, database: &str, sql: &str) -> anyhow::Result<String> {
        let port = self.port.to_string();
        let out = Command::new(self.bin.join("psql"))
            .args(["-h", "127.0.0.1", "-p", &port, "-U", "postgres", "-d", database, "-At", "-c", sql])
            .env("PGSSLMODE", "disable")
            .output()?;
        ensure!(out.status.success(), "psql {sql}: {}", String::from_utf8_lossy(&out.stderr));
        Ok(String::from_utf8(out.stdout)?.trim().to_owned())
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// A fresh database of the cluster, for one store.
    pub fn database(&self, name: &str) -> anyhow::Result<String> {
        let out = Command::new(self.bin.join("psql"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "postgres", "-c"])
            .arg(format!("CREATE DATABASE {name}"))
            .output()?;
        ensure!(out.status.success(), "CREATE DATABASE {name}: {}", String::from_utf8_lossy(&out.stderr));
        Ok(format!("postgres://postgres@127.0.0.1:{}/{name}", self.port))
    }

    /// Stops the server (`pg_ctl stop -m fast`): connections break, as when it goes away.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        let data = self.dir.path().join("data");
        let out = run_as_postgres(
            &self.bin.join("pg_ctl"),
            &["-D", data.to_str().unwrap_or_default(), "-m", "fast", "-w", "stop"],
        )?;
        ensure!(out.status.success(), "pg_ctl stop: {}", String::from_utf8_lossy(&out.stderr));
        self.running = false;
        Ok(())
    }

    /// Starts the server again on the same port and data.
    pub fn start_again(&mut self) -> anyhow::Result<()> {
        let data = self.dir.path().join("data");
        let sockets = self.dir.path().to_str().unwrap_or_default().to_owned();
        let mut opts = format!("-p {} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off", self.port);
        if let Some((cert, key)) = &self.tls {
            opts.push_str(&format!(" -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}", cert.display(), key.display()));
        }
        let log = self.dir.path().join("server.log");
        let out = run_as_postgres(
            &self.bin.join("pg_ctl"),
            &[
                "-D",
                data.to_str().unwrap_or_default(),
                "-o",
                &opts,
                "-l",
                log.to_str().unwrap_or_default(),
                "-w",
                "start",
            ],
        )?;
        if !out.status.success() {
            bail!(
                "pg_ctl start: {}\n{}",
                String::from_utf8_lossy(&out.stderr),
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        self.running = true;
        Ok(())
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if self.running {
            let _ = self.stop();
        }
    }
}

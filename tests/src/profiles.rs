//! The profile service (`hutong profiles serve`) as a process beside a test gateway: the
//! gateway's config file with a `[profiles]` table of its own (store, port, group).

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use anyhow::{bail, ensure};

use crate::{ClientAuth, Gateway, Process, TEST_KEY, free_port, hutong_bin, repo_root};

/// One instance of the profile service.
#[derive(Debug)]
pub struct ProfileService {
    /// The process.
    pub process: Process,
    /// `https://127.0.0.1:PORT`.
    pub endpoint: String,
    /// Its config file.
    pub config: PathBuf,
    /// Its log file.
    pub log_file: PathBuf,
    pki: PathBuf,
}

impl ProfileService {
    /// Starts an instance next to `gateway` with `store` (`sqlite:PATH` or a PostgreSQL URL),
    /// consumer group `group`, and `extra` lines in its `[profiles]` table; waits until it serves.
    pub async fn start(gateway: &Gateway, name: &str, store: &str, group: &str, extra: &str) -> anyhow::Result<Self> {
        let base = std::fs::read_to_string(gateway.dir.path().join("hutong.toml"))?;
        Self::start_with(gateway.dir.path(), &gateway.pki, &base, name, store, group, extra).await
    }

    /// An instance whose config is `base` (a gateway's config: Kafka, auth, audit) with its own
    /// `[profiles]` table, its files in `dir`.
    pub async fn start_with(
        dir: &Path,
        pki: &Path,
        base: &str,
        name: &str,
        store: &str,
        group: &str,
        extra: &str,
    ) -> anyhow::Result<Self> {
        let port = free_port();
        let config = dir.join(format!("profiles-{name}.toml"));
        let audit = dir.join(format!("audit-profiles-{name}"));
        std::fs::write(
            &config,
            format!(
                "{base}\n[profiles]\nenabled = true\nlisten = \"127.0.0.1:{port}\"\nstore = {store:?}\ngroup-id = {group:?}\n\
                 audit-dir = {audit:?}\nsession-timeout-ms = 6000\n{extra}\n"
            ),
        )?;
        let log_file = dir.join(format!("profiles-{name}.log"));
        let process = Self::spawn(&config, &log_file)?;
        let mut service =
            Self { process, endpoint: format!("https://127.0.0.1:{port}"), config, log_file, pki: pki.to_owned() };
        service.wait_serving(Duration::from_secs(60)).await?;
        Ok(service)
    }

    fn spawn(config: &Path, log: &Path) -> anyhow::Result<Process> {
        let mut cmd = Command::new(hutong_bin()?);
        cmd.args(["profiles", "serve", "--config"])
            .arg(config)
            .current_dir(repo_root())
            .env("HUTONG_PSEUDONYM_KEY", TEST_KEY)
            .env("HUTONG_LOG", "info,hutong_profiles=debug");
        Process::spawn(cmd, log.to_owned())
    }

    /// Whether its health says serving (it says not-serving while its store is away).
    pub async fn is_serving(&self) -> bool {
        crate::serving_service(&ClientAuth::from_pki(&self.pki, None), &self.endpoint, "hutong.v1.Profiles").await
    }

    /// Waits until it serves.
    pub async fn wait_serving(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let auth = ClientAuth::from_pki(&self.pki, None);
        self.process.wait_serving("hutong profiles serve", &auth, &self.endpoint, "hutong.v1.Profiles", timeout).await
    }

    /// `kill -9`, then the same instance again (same config, store, group).
    pub async fn kill9_and_restart(&mut self) -> anyhow::Result<()> {
        self.process.kill9()?;
        self.process = Self::spawn(&self.config, &self.log_file)?;
        self.wait_serving(Duration::from_secs(60)).await
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_file).unwrap_or_default()
    }

    /// The CLI flags that reach it as `identity`.
    pub fn cli_args(&self, identity: &str) -> Vec<String> {
        crate::cli_args(&self.endpoint, &self.pki, identity)
    }

    /// `hutong profile <args> --json` against it as `identity`: the answer.
    pub fn ask(&self, identity: &str, args: &[&str]) -> anyhow::Result<serde_json::Value> {
        let mut all: Vec<String> = vec!["profile".into()];
        all.extend(args.iter().map(|a| (*a).to_owned()));
        all.push("--json".into());
        all.extend(self.cli_args(identity));
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        let out = crate::hutong(&refs)?;
        ensure!(out.status.success(), "hutong {}: {}", refs.join(" "), String::from_utf8_lossy(&out.stderr));
        Ok(serde_json::from_slice(&out.stdout)?)
    }
}

/// Submits every department's sample export to `gateway` as that department (`hutong ingest`);
/// how many records were published.
pub fn ingest_samples(gateway: &Gateway) -> anyhow::Result<usize> {
    let mut samples = Vec::new();
    for dept in std::fs::read_dir(repo_root().join("schemas/departments"))? {
        let dir = dept?.path().join("samples");
        for f in std::fs::read_dir(&dir).into_iter().flatten() {
            samples.push(f?.path());
        }
    }
    samples.sort();
    let mut published = 0;
    for sample in &samples {
        let dept = sample.parent().and_then(Path::parent).and_then(Path::file_name).and_then(|s| s.to_str());
        let kind = sample.file_stem().and_then(|s| s.to_str());
        let (Some(dept), Some(kind)) = (dept, kind) else { bail!("sample path {}", sample.display()) };
        let mut args: Vec<String> = vec!["ingest".into(), "-k".into(), kind.into(), "--json".into()];
        args.push(sample.display().to_string());
        args.extend(gateway.cli_args(dept));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = crate::hutong(&refs)?;
        ensure!(out.status.success(), "{dept}/{kind}: {}", String::from_utf8_lossy(&out.stderr));
        published += String::from_utf8(out.stdout)?.lines().filter(|l| l.contains("\"PUBLISHED\"")).count();
    }
    Ok(published)
}

/// Whether consumer group `group` has committed, on every partition of `topics`, an offset past
/// the last message there now (read to its end; tansu's ListOffsets is not to be trusted).
pub fn caught_up(bootstrap: &str, group: &str, topics: &[&str]) -> anyhow::Result<bool> {
    use rdkafka::consumer::Consumer as _;
    let mut client = rdkafka::ClientConfig::new();
    client.set("bootstrap.servers", bootstrap);
    let mut ends: std::collections::BTreeMap<(String, i32), i64> = std::collections::BTreeMap::new();
    for m in hutong_bus::read_to_end(&client, topics, Duration::from_secs(60))? {
        use rdkafka::Message as _;
        let end = ends.entry((m.topic().to_owned(), m.partition())).or_default();
        *end = (*end).max(m.offset() + 1);
    }
    let consumer: rdkafka::consumer::BaseConsumer =
        client.clone().set("group.id", group).set("enable.auto.commit", "false").create()?;
    let mut tpl = rdkafka::TopicPartitionList::new();
    for (topic, partition) in ends.keys() {
        tpl.add_partition(topic, *partition);
    }
    let committed = consumer.committed_offsets(tpl, Duration::from_secs(10))?;
    Ok(ends.iter().all(|((topic, partition), end)| {
        committed
            .find_partition(topic, *partition)
            .is_some_and(|p| matches!(p.offset(), rdkafka::Offset::Offset(o) if o >= *end))
    }))
}

//! Shared helpers of Hutong's end-to-end tests: a real broker process
//! (tansu, memory storage), the `hutong` binary as a process, and an
//! independent Kafka consumer.
//!
//! A test that needs the broker fails (never skips) when it cannot start.

use std::{
    collections::BTreeMap,
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail, ensure};
pub use hutong_client::ClientAuth;

pub mod acl_broker;
pub mod inproc;
pub mod pg;
pub mod profiles;
use rdkafka::{
    ClientConfig,
    consumer::{BaseConsumer, Consumer},
    message::{Headers, Message},
};

/// Copies the folder `src` to `dst`, recursively.
pub fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).expect("create the copy");
    for entry in std::fs::read_dir(src).expect("read the folder") {
        let p = entry.expect("an entry").path();
        let to = dst.join(p.file_name().expect("a name"));
        if p.is_dir() {
            copy_dir(&p, &to)
        } else {
            std::fs::copy(&p, &to).expect("copy a file");
        }
    }
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_owned()
}

/// A free TCP port on 127.0.0.1 (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// Polls `ready` until it is true or `timeout` passes.
pub fn wait_until(
    what: &str,
    timeout: Duration,
    mut ready: impl FnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if ready()? {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A child process killed when dropped; its output goes to a log file.
#[derive(Debug)]
pub struct Process {
    child: Child,
    /// Where its stdout and stderr go.
    pub log: PathBuf,
}

impl Process {
    /// Waits until the server it runs at `endpoint` says `service` is serving (gRPC health);
    /// fails with its log when it dies or `timeout` passes.
    pub async fn wait_serving(
        &mut self,
        name: &str,
        auth: &ClientAuth,
        endpoint: &str,
        service: &str,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            self.check_alive(name)?;
            if serving_service(auth, endpoint, service).await {
                return Ok(());
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                bail!("{name} not serving {service} after {timeout:?}; its log:\n{log}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Spawns `cmd` with its output (stdout and stderr) going to `log`.
    pub fn spawn(mut cmd: Command, log: PathBuf) -> anyhow::Result<Self> {
        let out = std::fs::OpenOptions::new().create(true).append(true).open(&log)?;
        cmd.stdout(out.try_clone()?).stderr(out).stdin(Stdio::null());
        let child = cmd.spawn().with_context(|| format!("spawning {cmd:?}"))?;
        Ok(Self { child, log })
    }

    /// Fails when the process has already exited.
    pub fn check_alive(&mut self, name: &str) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            bail!("{name} exited with {status}; its log:\n{log}");
        }
        Ok(())
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGKILL (`kill -9`) and reaps the process.
    pub fn kill9(&mut self) -> anyhow::Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    /// Sends signal `name` (`HUP`, `STOP`, `CONT` …).
    pub fn signal(&self, name: &str) -> anyhow::Result<()> {
        let status = Command::new("kill").arg(format!("-{name}")).arg(self.child.id().to_string()).status()?;
        ensure!(status.success(), "kill -{name} {} failed", self.child.id());
        Ok(())
    }

    /// Waits for the process to exit.
    pub fn wait(&mut self) -> anyhow::Result<std::process::ExitStatus> {
        Ok(self.child.wait()?)
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> anyhow::Result<std::process::ExitStatus> {
        Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status()?;
        Ok(self.child.wait()?)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The tansu binary: `$TANSU_BIN`, else `tansu` in `~/.cargo/bin`, else on `PATH`.
pub fn tansu_bin() -> anyhow::Result<PathBuf> {
    if let Ok(p) = std::env::var("TANSU_BIN") {
        return Ok(PathBuf::from(p));
    }
    let home = std::env::var("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cargo"));
    let candidate = home.join("bin/tansu");
    if candidate.is_file() {
        return Ok(candidate);
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("tansu"))
        .find(|p| p.is_file());
    on_path.context(
        "the tansu broker is not installed: run deploy/broker.sh install (tests need a broker and fail without one)",
    )
}

/// A tansu broker with memory storage on a free port.
#[derive(Debug)]
pub struct Broker {
    /// The broker process.
    pub process: Process,
    /// `127.0.0.1:PORT` clients bootstrap from.
    pub bootstrap: String,
    port: u16,
    advertised: u16,
    _dir: tempfile::TempDir,
    storage: String,
}

impl Broker {
    /// Starts tansu with memory storage and waits until it accepts connections.
    pub fn start() -> anyhow::Result<Self> {
        Self::start_with(tempfile::tempdir()?, free_port(), "memory://tansu/")
    }

    /// Starts tansu with SQLite storage in its own folder, so it can be restarted.
    pub fn start_durable() -> anyhow::Result<Self> {
        Self::start_with(tempfile::tempdir()?, free_port(), "sqlite://broker.db")
    }

    /// Starts tansu (memory storage) behind a [`LossyProxy`]: it advertises the proxy's
    /// address, so every client connection goes through the proxy; `bootstrap` is the proxy.
    pub async fn start_behind_proxy() -> anyhow::Result<(Self, LossyProxy)> {
        let (port, proxy_port) = (free_port(), free_port());
        let proxy = LossyProxy::start(proxy_port, format!("127.0.0.1:{port}")).await?;
        let dir = tempfile::tempdir()?;
        let storage = "memory://tansu/";
        let process = Self::spawn(&dir, port, proxy_port, storage)?;
        Ok((
            Self {
                process,
                bootstrap: proxy.addr.clone(),
                port,
                advertised: proxy_port,
                _dir: dir,
                storage: storage.to_owned(),
            },
            proxy,
        ))
    }

    fn start_with(dir: tempfile::TempDir, port: u16, storage: &str) -> anyhow::Result<Self> {
        let process = Self::spawn(&dir, port, port, storage)?;
        let bootstrap = format!("127.0.0.1:{port}");
        Ok(Self { process, bootstrap, port, advertised: port, _dir: dir, storage: storage.to_owned() })
    }

    fn spawn(dir: &tempfile::TempDir, port: u16, advertised: u16, storage: &str) -> anyhow::Result<Process> {
        let bin = tansu_bin()?;
        let url = format!("tcp://127.0.0.1:{port}");
        let public = format!("tcp://127.0.0.1:{advertised}");
        let mut cmd = Command::new(bin);
        cmd.current_dir(dir.path())
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &public])
            .args(["--storage-engine", storage]);
        let mut process = Process::spawn(cmd, dir.path().join(format!("tansu-{}.log", std::process::id())))?;
        let listen = format!("127.0.0.1:{port}");
        wait_until("tansu to listen", Duration::from_secs(30), || {
            process.check_alive("tansu")?;
            Ok(TcpStream::connect(&listen).is_ok())
        })?;
        Ok(process)
    }

    /// Kills the broker (`kill -9`); [`Self::start_again`] brings it back.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        self.process.kill9()
    }

    /// Starts the broker again on the same port and storage.
    pub fn start_again(&mut self) -> anyhow::Result<()> {
        self.process = Self::spawn(&self._dir, self.port, self.advertised, &self.storage)?;
        Ok(())
    }

    /// Kills the broker (`kill -9`) and starts it again on the same port and storage.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.stop()?;
        self.start_again()
    }
}

/// The `hutong` binary of this build (`$HUTONG_BIN` overrides).
pub fn hutong_bin() -> anyhow::Result<PathBuf> {
    if let Ok(p) = std::env::var("HUTONG_BIN") {
        return Ok(PathBuf::from(p));
    }
    // target/<profile>/deps/<test-exe> → target/<profile>/hutong
    let exe = std::env::current_exe()?;
    let bin = exe.parent().and_then(Path::parent).map(|d| d.join("hutong")).context("no target dir")?;
    anyhow::ensure!(bin.is_file(), "{} is missing: build it first (cargo build --workspace)", bin.display());
    Ok(bin)
}

/// A valid 18-character citizen ID (GB 11643) for sequence number `seq` (the one generator
/// of the tests and the benchmark).
pub use hutong_standard::checks::{citizen_id_sex as sex_of, synthetic_citizen_id as citizen_id};

/// Runs the `hutong` binary of this build in the repository root with [`TEST_KEY`] as the
/// pseudonym key, as a user runs it.
pub fn hutong(args: &[&str]) -> anyhow::Result<std::process::Output> {
    Ok(Command::new(hutong_bin()?)
        .args(args)
        .current_dir(repo_root())
        .env("HUTONG_PSEUDONYM_KEY", TEST_KEY)
        .output()?)
}

/// The Python the independent checkers run with (`$HUTONG_PYTHON`, which deploy/test.sh points
/// at the venv holding confluent-kafka, PyYAML and jsonschema; else `python3`).
pub fn python() -> String {
    std::env::var("HUTONG_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

/// Runs the Python script `script` (relative to the repository root) with `args`.
pub fn run_python(script: &str, args: &[&str]) -> anyhow::Result<std::process::Output> {
    Ok(Command::new(python()).arg(repo_root().join(script)).args(args).output()?)
}

/// An event with `id` and nothing else a test needs (source `/t`, type `t`, now).
pub fn bare_event(id: &str) -> hutong_bus::CloudEvent {
    hutong_bus::CloudEvent {
        id: id.to_owned(),
        source: "/t".into(),
        ty: "t".into(),
        subject: None,
        time: chrono::Utc::now(),
        dataschema: None,
        source_id: None,
        revision: None,
        flags: None,
    }
}

/// The pseudonym key every end-to-end gateway uses.
pub const TEST_KEY: &str = "hutong-e2e-test-key-0123456789abcdef";

/// The records of a department's NDJSON sample (a path under the repository), each with its
/// payload as JSON (decoded from its charset for `payload_base64` lines); the kind is the file's
/// name. Read as `hutong ingest` reads it (`hutong_client::read_ndjson`).
pub fn sample_records(path: &str) -> anyhow::Result<Vec<(hutong_proto::v1::SourceRecord, serde_json::Value)>> {
    let kind = Path::new(path).file_stem().and_then(|s| s.to_str()).context("a sample file name")?.to_owned();
    let mut out = Vec::new();
    for line in hutong_client::read_ndjson(&repo_root().join(path), &kind, None)? {
        let json = hutong_client::decoded_payload(&line.record)
            .with_context(|| format!("{path}:{}: a payload that is not JSON in its charset", line.number))?;
        out.push((line.record, json));
    }
    Ok(out)
}

/// `hutong certs init` into `dir` for the local policy: a CA, the gateway's
/// certificate, one client certificate per department and admin.
pub fn make_pki(dir: &Path) -> anyhow::Result<()> {
    let out = Command::new(hutong_bin()?)
        .args(["certs", "init", "--policy"])
        .arg(repo_root().join("deploy/local/policy.toml"))
        .arg("--out")
        .arg(dir)
        .output()?;
    ensure!(out.status.success(), "hutong certs init failed: {}", String::from_utf8_lossy(&out.stderr));
    Ok(())
}

/// The development PKI this test process shares (made once).
pub fn shared_pki() -> anyhow::Result<&'static Path> {
    static PKI: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    if let Some(p) = PKI.get() {
        return Ok(p);
    }
    let dir = std::env::temp_dir().join(format!("hutong-test-pki-{}", std::process::id()));
    make_pki(&dir)?;
    Ok(PKI.get_or_init(|| dir))
}

/// What a test gateway is started with.
#[derive(Debug, Clone)]
pub struct Setup {
    /// The PKI (`ca.pem`, `server.pem`, `crl.pem`, clients).
    pub pki: PathBuf,
    /// The `schemas/` folder.
    pub schemas: PathBuf,
    /// The policy file.
    pub policy: PathBuf,
    /// Lines added to the `[kafka]` table (e.g. `message-timeout-ms = 2000`).
    pub kafka: String,
    /// TOML appended to the config.
    pub extra: String,
}

impl Setup {
    /// The shared PKI, the repository's schemas and local policy, nothing extra.
    pub fn new() -> anyhow::Result<Self> {
        Ok(Self {
            pki: shared_pki()?.to_owned(),
            schemas: repo_root().join("schemas"),
            policy: repo_root().join("deploy/local/policy.toml"),
            kafka: String::new(),
            extra: String::new(),
        })
    }
}

/// The hutong gateway as a process, configured by a file in a temp dir:
/// mTLS with a development PKI, the local policy, an audit dir of its own.
#[derive(Debug)]
pub struct Gateway {
    /// The gateway process.
    pub process: Process,
    /// `https://127.0.0.1:PORT`.
    pub endpoint: String,
    /// The schema registry's base URL, `http://127.0.0.1:PORT`.
    pub registry_url: String,
    /// The PKI its clients use (`ca.pem`, `<identity>.pem`/`.key`).
    pub pki: PathBuf,
    /// Its audit directory.
    pub audit_dir: PathBuf,
    /// Its config dir.
    pub dir: tempfile::TempDir,
}

/// Every producer of a test writes one record per batch. tansu 0.6's memory storage answers a
/// fetch that starts inside a batch with the batches after it: a consumer resuming from an offset
/// committed mid-batch (a restart, a rebalance, a rewind) would skip the rest of that batch for
/// good. Checked on this machine: ten records in one batch, read from offset 5, give 10.. with
/// memory storage and 5.. with SQLite storage or with one record per batch. SQLite storage is
/// too slow under the suite's load and serves only the tests that restart the broker. Kafka
/// fetches from any offset; production configurations need nothing of this.
const ONE_RECORD_BATCHES: &str = "\"batch.num.messages\" = \"1\"";

impl Gateway {
    /// Starts `hutong serve` against `bootstrap` (shared PKI) and waits until its health check serves.
    pub async fn start(bootstrap: &str) -> anyhow::Result<Self> {
        Self::start_with(bootstrap, shared_pki()?, &repo_root().join("schemas"), "").await
    }

    /// Same with the PKI in `pki`, the `schemas/` folder `schemas` and `extra` TOML appended to the config.
    pub async fn start_with(bootstrap: &str, pki: &Path, schemas: &Path, extra: &str) -> anyhow::Result<Self> {
        let setup =
            Setup { pki: pki.to_owned(), schemas: schemas.to_owned(), extra: extra.to_owned(), ..Setup::new()? };
        Self::start_setup(bootstrap, setup).await
    }

    /// A gateway as `setup` describes it.
    pub async fn start_setup(bootstrap: &str, setup: Setup) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let port = free_port();
        let registry_port = free_port();
        let registry_url = format!("http://127.0.0.1:{registry_port}");
        let config = dir.path().join("hutong.toml");
        let audit_dir = dir.path().join("audit");
        let pki = &setup.pki;
        std::fs::write(
            &config,
            format!(
                "listen = \"127.0.0.1:{port}\"\nschemas-dir = {:?}\n\n[kafka]\nbootstrap-servers = \"{bootstrap}\"\n{}\n\n\
                 [kafka.options]\n{ONE_RECORD_BATCHES}\n\n\
                 [registry]\nlisten = \"127.0.0.1:{registry_port}\"\npublic-url = \"{registry_url}\"\n\n\
                 [auth]\nmode = \"mtls\"\npolicy-file = {:?}\nca-file = {:?}\ncert-file = {:?}\nkey-file = {:?}\n\
                 crl-files = [{:?}]\n\n[audit]\ndir = {:?}\n{}",
                setup.schemas,
                setup.kafka,
                setup.policy,
                pki.join("ca.pem"),
                pki.join("server.pem"),
                pki.join("server.key"),
                pki.join("crl.pem"),
                audit_dir,
                setup.extra,
            ),
        )?;
        let process = Self::spawn(&config, dir.path())?;
        let endpoint = format!("https://127.0.0.1:{port}");
        let mut gateway = Self { process, endpoint, registry_url, pki: pki.to_owned(), audit_dir, dir };
        gateway.wait_serving().await?;
        Ok(gateway)
    }

    fn spawn(config: &Path, dir: &Path) -> anyhow::Result<Process> {
        let mut cmd = Command::new(hutong_bin()?);
        cmd.args(["serve", "--config"]).arg(config).env("HUTONG_PSEUDONYM_KEY", TEST_KEY).env("HUTONG_LOG", "debug");
        Process::spawn(cmd, dir.join("gateway.log"))
    }

    async fn wait_serving(&mut self) -> anyhow::Result<()> {
        let anonymous = ClientAuth::from_pki(&self.pki, None);
        self.process
            .wait_serving("hutong serve", &anonymous, &self.endpoint, "hutong.v1.Ingest", Duration::from_secs(60))
            .await
    }

    /// Kills the gateway (`kill -9`) and starts it again with the same config, ports, spool and
    /// audit files; its log goes on in the same file.
    pub async fn kill9_and_restart(&mut self) -> anyhow::Result<()> {
        self.process.kill9()?;
        self.process = Self::spawn(&self.dir.path().join("hutong.toml"), self.dir.path())?;
        self.wait_serving().await
    }

    /// Sends SIGHUP (reload the policy, the TLS files, the standard and the adapters).
    pub fn hangup(&self) -> anyhow::Result<()> {
        self.process.signal("HUP")
    }

    /// The value of the metric sample `name{labels}` (the whole text before the value) now.
    pub fn metric(&self, sample: &str) -> anyhow::Result<Option<f64>> {
        let (code, text) = http_get(&format!("{}/metrics", self.registry_url))?;
        ensure!(code == 200, "GET /metrics answered {code}");
        Ok(text.lines().find_map(|l| l.strip_prefix(sample)?.strip_prefix(' ')?.trim().parse().ok()))
    }

    /// Waits until the metric sample `sample` equals `value`.
    pub fn wait_metric(&self, sample: &str, value: f64, timeout: Duration) -> anyhow::Result<()> {
        let mut last = None;
        wait_until(&format!("{sample} = {value}"), timeout, || {
            last = self.metric(sample)?;
            Ok(last == Some(value))
        })
        .with_context(|| format!("{sample} is {last:?}"))
    }

    /// Waits until the gateway's log holds `needle` at least `times` times.
    pub fn wait_log(&self, needle: &str, times: usize, timeout: Duration) -> anyhow::Result<()> {
        wait_until(&format!("{times}× {needle:?} in the gateway log"), timeout, || {
            Ok(self.log().matches(needle).count() >= times)
        })
        .with_context(|| format!("gateway log:\n{}", self.log()))
    }

    /// The gateway's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.process.log).unwrap_or_default()
    }

    /// A channel presenting the certificate of `identity` (a department or admin of the local policy).
    pub async fn channel(&self, identity: &str) -> anyhow::Result<tonic::transport::Channel> {
        Ok(ClientAuth::from_pki(&self.pki, Some(identity)).connect(&self.endpoint).await?)
    }

    /// The CLI flags that reach this gateway as `identity`.
    pub fn cli_args(&self, identity: &str) -> Vec<String> {
        cli_args(&self.endpoint, &self.pki, identity)
    }

    /// Waits until the audit trail has an event matching `pred`; returns it.
    pub fn audited(&self, what: &str, pred: impl Fn(&serde_json::Value) -> bool) -> anyhow::Result<serde_json::Value> {
        let mut found = None;
        wait_until(what, Duration::from_secs(10), || {
            found = self.audit_events()?.into_iter().find(|e| pred(e));
            Ok(found.is_some())
        })
        .with_context(|| format!("audit events: {:#?}", self.audit_events().unwrap_or_default()))?;
        found.context("found")
    }

    /// Every audit entry so far (the event objects), in order.
    pub fn audit_events(&self) -> anyhow::Result<Vec<serde_json::Value>> {
        Ok(self.audit_entries()?.into_iter().map(|mut e| e["event"].take()).collect())
    }

    /// Every audit entry so far, whole (`seq`, `time`, `prev`, `event`, `hash`), in order.
    pub fn audit_entries(&self) -> anyhow::Result<Vec<serde_json::Value>> {
        let mut files: Vec<PathBuf> =
            std::fs::read_dir(&self.audit_dir)?.filter_map(|e| e.ok().map(|e| e.path())).collect();
        files.retain(|p| p.extension().is_some_and(|x| x == "jsonl"));
        files.sort();
        let mut events = Vec::new();
        for f in files {
            for line in std::fs::read_to_string(&f)?.lines() {
                events.push(serde_json::from_str(line)?);
            }
        }
        Ok(events)
    }
}

/// The CLI flags that reach the server at `endpoint` as `identity` of the PKI in `pki`.
pub fn cli_args(endpoint: &str, pki: &Path, identity: &str) -> Vec<String> {
    vec!["--addr".into(), endpoint.into(), "--pki".into(), pki.display().to_string(), "--as".into(), identity.into()]
}

/// Whether the server at `endpoint` says `service` is serving (gRPC health).
pub async fn serving_service(auth: &ClientAuth, endpoint: &str, service: &str) -> bool {
    use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};
    let Ok(channel) = auth.connect(endpoint).await else { return false };
    let mut client = HealthClient::new(channel);
    client
        .check(HealthCheckRequest { service: service.into() })
        .await
        .is_ok_and(|r| r.into_inner().status == ServingStatus::Serving as i32)
}

/// A message as an independent consumer saw it.
#[derive(Debug, Clone)]
pub struct Consumed {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Key as text.
    pub key: Option<String>,
    /// Headers as text.
    pub headers: BTreeMap<String, String>,
    /// Value as JSON (`None` for a tombstone).
    pub value: Option<serde_json::Value>,
}

fn consumer(bootstrap: &str, group: &str) -> anyhow::Result<BaseConsumer> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "6000")
        .create()?)
}

/// The partitions of `topic`.
pub fn partitions(bootstrap: &str, topic: &str) -> anyhow::Result<Vec<i32>> {
    let c = consumer(bootstrap, &format!("partitions-{}", std::process::id()))?;
    let md = c.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let t = md.topics().iter().find(|t| t.name() == topic).with_context(|| format!("no topic {topic}"))?;
    ensure!(t.error().is_none(), "topic {topic}: {:?}", t.error());
    let mut out: Vec<i32> = t.partitions().iter().map(|p| p.id()).collect();
    out.sort();
    Ok(out)
}

/// How many messages `topic` holds now, read to the end of every partition (so an extra
/// publish shows, unlike a consumer that stops after n messages).
pub fn topic_count(bootstrap: &str, topic: &str) -> anyhow::Result<i64> {
    Ok(consume_all(bootstrap, topic)?.len() as i64)
}

/// Waits until `topic` holds at least `n` messages; returns how many it holds.
pub fn wait_for_count(bootstrap: &str, topic: &str, n: i64, timeout: Duration) -> anyhow::Result<i64> {
    let mut count = 0;
    wait_until(&format!("{n} messages on {topic}"), timeout, || {
        count = topic_count(bootstrap, topic).unwrap_or(0);
        Ok(count >= n)
    })
    .with_context(|| format!("{topic} holds {count}"))?;
    Ok(count)
}

/// Every message of `topic`, read by an independent consumer from the beginning of each
/// partition to its end (the partition-EOF event: the high watermark of the broker's fetch
/// answer). The high watermarks of ListOffsets are not used: tansu 0.6 answers there with the
/// last batch's base offset + 1, not the last record's. (tansu never delivers tombstones
/// either, so a topic ending in one reads short there.)
pub fn consume_all(bootstrap: &str, topic: &str) -> anyhow::Result<Vec<Consumed>> {
    let mut client = ClientConfig::new();
    client.set("bootstrap.servers", bootstrap);
    hutong_bus::read_to_end(&client, &[topic], Duration::from_secs(60))?.iter().map(consumed).collect()
}

fn consumed(msg: &impl Message) -> anyhow::Result<Consumed> {
    let headers = msg
        .headers()
        .map(|h| {
            h.iter()
                .map(|x| (x.key.to_owned(), String::from_utf8_lossy(x.value.unwrap_or_default()).into_owned()))
                .collect()
        })
        .unwrap_or_default();
    Ok(Consumed {
        topic: msg.topic().to_owned(),
        partition: msg.partition(),
        offset: msg.offset(),
        key: msg.key().map(|k| String::from_utf8_lossy(k).into_owned()),
        headers,
        value: msg.payload().map(serde_json::from_slice).transpose()?,
    })
}

/// HMAC-SHA256 hex of `value` under [`TEST_KEY`], computed independently of Hutong's code.
pub fn expected_person_key(citizen_id: &str) -> String {
    use hmac::{Hmac, KeyInit, Mac};
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(TEST_KEY.as_bytes()).expect("any key length");
    mac.update(citizen_id.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// A plain HTTP/1.1 GET of `http://host:port/path`: (status code, body).
pub fn http_get(url: &str) -> anyhow::Result<(u16, String)> {
    use std::io::{Read as _, Write as _};
    let rest = url.strip_prefix("http://").context("http:// URLs only")?;
    let (host, path) = rest.split_once('/').map(|(h, p)| (h, format!("/{p}"))).unwrap_or((rest, "/".to_owned()));
    let mut s = TcpStream::connect(host)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").context("no HTTP header")?;
    let status = head.split_whitespace().nth(1).context("no status")?.parse()?;
    // Bodies here are small; undo chunked encoding if the server used it.
    let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        let mut out = String::new();
        let mut rest = body;
        while let Some((size, tail)) = rest.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if n == 0 {
                break;
            }
            out.push_str(&tail[..n]);
            rest = &tail[n + 2..];
        }
        out
    } else {
        body.to_owned()
    };
    Ok((status, body))
}

/// A Kafka-protocol proxy in front of a broker that can lose one Produce response: the request
/// reaches the broker (which appends), its answer is dropped and the client's connection
/// closed, as a network fault after the append would. Brokers advertise the proxy's address,
/// so every connection of a client goes through it.
#[derive(Debug)]
pub struct LossyProxy {
    /// `127.0.0.1:PORT` clients connect to.
    pub addr: String,
    lose_next_produce: std::sync::Arc<std::sync::atomic::AtomicBool>,
    lost: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl LossyProxy {
    /// A proxy on a free port in front of `broker` (`host:port`).
    pub async fn start(port: u16, broker: String) -> anyhow::Result<Self> {
        use std::sync::{
            Arc,
            atomic::{AtomicBool, AtomicUsize},
        };
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        let lose_next_produce = Arc::new(AtomicBool::new(false));
        let lost = Arc::new(AtomicUsize::new(0));
        let (arm, count) = (Arc::clone(&lose_next_produce), Arc::clone(&lost));
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (arm, count, broker) = (Arc::clone(&arm), Arc::clone(&count), broker.clone());
                tokio::spawn(async move {
                    if let Ok(upstream) = tokio::net::TcpStream::connect(&broker).await {
                        let _ = proxy_connection(client, upstream, arm, count).await;
                    }
                });
            }
        });
        Ok(Self { addr: format!("127.0.0.1:{port}"), lose_next_produce, lost, task })
    }

    /// The answer to the next Produce request that passes is lost.
    pub fn lose_next_produce_response(&self) {
        self.lose_next_produce.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// How many Produce responses were lost so far.
    pub fn lost(&self) -> usize {
        self.lost.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for LossyProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One client connection: frames pass both ways; an armed proxy notes the correlation id of
/// the next Produce request (API key 0), forwards it, and drops the broker's answer to it,
/// closing the client's side.
async fn proxy_connection(
    client: tokio::net::TcpStream,
    upstream: tokio::net::TcpStream,
    arm: std::sync::Arc<std::sync::atomic::AtomicBool>,
    lost: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) -> std::io::Result<()> {
    use std::sync::atomic::{AtomicI64, Ordering};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    async fn frame(r: &mut (impl tokio::io::AsyncRead + Unpin)) -> std::io::Result<Vec<u8>> {
        let mut len = [0u8; 4];
        r.read_exact(&mut len).await?;
        let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
        r.read_exact(&mut body).await?;
        Ok([len.to_vec(), body].concat())
    }
    let drop_id = std::sync::Arc::new(AtomicI64::new(-1));
    let (mut cr, mut cw) = client.into_split();
    let (mut ur, mut uw) = upstream.into_split();
    let watch = std::sync::Arc::clone(&drop_id);
    let requests = tokio::spawn(async move {
        loop {
            let f = frame(&mut cr).await?;
            // Request header: size, api_key (i16), api_version (i16), correlation_id (i32).
            if f.len() >= 12 && i16::from_be_bytes([f[4], f[5]]) == 0 && arm.swap(false, Ordering::SeqCst) {
                watch.store(i64::from(i32::from_be_bytes([f[8], f[9], f[10], f[11]])), Ordering::SeqCst);
            }
            uw.write_all(&f).await?;
        }
        #[allow(unreachable_code)]
        std::io::Result::Ok(())
    });
    let result = async {
        loop {
            let f = frame(&mut ur).await?;
            // Response header: size, correlation_id (i32).
            let id = i64::from(i32::from_be_bytes([f[4], f[5], f[6], f[7]]));
            if id == drop_id.load(Ordering::SeqCst) {
                lost.fetch_add(1, Ordering::SeqCst);
                return std::io::Result::Ok(());
            }
            cw.write_all(&f).await?;
        }
    }
    .await;
    requests.abort();
    result
}

//! `hutong ingest`: submit an export (NDJSON, CSV, a workbook) over gRPC and summarise the
//! answers; for a bulk load, a progress bar, a checkpoint to resume from, and a rejects file.

use std::{
    collections::BTreeMap,
    io::{IsTerminal as _, Write as _},
    path::{Path, PathBuf},
    process::ExitCode,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use futures::StreamExt as _;
use hutong_client::{Line, decoded_payload};
use hutong_proto::{
    json::{record_result, status_name, violations},
    v1::{RecordResult, Status, SubmitRequest, SubmitResponse, ingest_client::IngestClient},
};
use serde::{Deserialize, Serialize};
use sha2::Digest as _;
use tonic::Request;

use crate::{client::ConnectArgs, input::InputArgs};

#[derive(Debug, clap::Args)]
#[command(after_help = "A bulk load a person can watch and resume:\n  \
    hutong ingest --as tuiyi -k veteran_registration export.xlsx --id-field 编号 --revision-field 更新时间 \\\n    \
    --checkpoint load.ckpt --rejects rejects.ndjson --quiet\n\
    Interrupted, the same command goes on after the last batch the gateway answered. The rejects file holds \
    each refused record as an NDJSON wrapper with its violations: fix it and ingest it as it is.")]
pub(crate) struct IngestArgs {
    /// The department's source kind, e.g. `household_registration`.
    #[arg(long, short)]
    kind: String,
    #[command(flatten)]
    input: InputArgs,
    /// Gateway and identity: the department is the one its certificate (or token) names.
    #[command(flatten)]
    connect: ConnectArgs,
    /// Records per request.
    #[arg(long, default_value_t = 500)]
    batch_size: usize,
    /// Use the streaming RPC (SubmitStream) instead of unary Submit.
    #[arg(long)]
    stream: bool,
    /// The schemas folder, to find the adapter's declared `source-id` field when `--id-field`
    /// is not given.
    #[arg(long, default_value = "schemas")]
    schemas: PathBuf,
    /// A checkpoint file: written after every answered batch; when it exists (for the same
    /// file, kind and identity) the load goes on after the last answered record. Removed when
    /// the load is done.
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Ignore an existing checkpoint and send the whole file again.
    #[arg(long, requires = "checkpoint")]
    restart: bool,
    /// Write each rejected record (as an NDJSON wrapper, with its violations) to this file, to
    /// fix and ingest again. It holds personal data: created readable by its owner only.
    #[arg(long)]
    rejects: Option<PathBuf>,
    /// Print one JSON line per record instead of the summary.
    #[arg(long)]
    json: bool,
    /// Print only the summary line.
    #[arg(long, short, conflicts_with = "json")]
    quiet: bool,
}

/// The source-id field the adapter of `kind` declares (of `department` when known, else the
/// only adapter of that kind), if `schemas` has it.
fn declared_id_field(schemas: &Path, department: Option<&str>, kind: &str) -> Option<String> {
    let standard = hutong_standard::Standard::load(schemas).ok()?;
    let adapters = hutong_adapter::Adapters::load(&schemas.join("departments"), &standard).ok()?;
    let mut of_kind = adapters.iter().filter(|a| a.kind == kind && department.is_none_or(|d| a.department == d));
    let first = of_kind.next()?;
    if of_kind.next().is_some() {
        return None;
    }
    first.source_id_field.clone()
}

/// Where a load stands: written after every answered batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Checkpoint {
    /// The file's SHA-256: a checkpoint resumes the same bytes only.
    sha256: String,
    file: String,
    kind: String,
    identity: Option<String>,
    /// How the file was read (format, encoding, sheet, id and revision fields): read another
    /// way, the same bytes are other records.
    #[serde(default)]
    reading: String,
    records: usize,
    /// Records answered, from the first: the load goes on after them.
    answered: usize,
    /// Answers so far by status.
    counts: BTreeMap<String, u64>,
}

impl Checkpoint {
    fn load(path: &Path) -> anyhow::Result<Option<Checkpoint>> {
        match std::fs::read(path) {
            Ok(bytes) => Ok(Some(
                serde_json::from_slice(&bytes)
                    .with_context(|| format!("{}: not a checkpoint of hutong ingest", path.display()))?,
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Written whole or not at all (a temporary file renamed over it).
    fn save(&self, path: &Path) -> anyhow::Result<()> {
        let tmp = with_suffix(path, ".tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(self)?).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
    }
}

/// Progress on a terminal (a bar with rate and ETA), else a plain line every few seconds.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    total: usize,
    done: usize,
    from: usize,
    started: Instant,
    last_line: Instant,
}

impl Progress {
    const EVERY: Duration = Duration::from_secs(5);

    fn new(total: usize, done: usize) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(total as u64).with_position(done as u64);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{elapsed_precise} [{wide_bar}] {human_pos}/{human_len} records  {per_sec}  ETA {eta}",
                )
                .expect("a valid template"),
            );
            bar
        });
        let now = Instant::now();
        Progress { bar, total, done, from: done, started: now, last_line: now }
    }

    fn advance(&mut self, n: usize) {
        self.done += n;
        match &self.bar {
            Some(bar) => bar.inc(n as u64),
            None if self.last_line.elapsed() >= Self::EVERY => {
                self.last_line = Instant::now();
                eprintln!("{}", self.line());
            }
            None => {}
        }
    }

    fn line(&self) -> String {
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        let rate = (self.done - self.from) as f64 / secs;
        let eta =
            if rate > 0.0 { format!(", ETA {:.0} s", (self.total - self.done) as f64 / rate) } else { String::new() };
        format!("ingest: {}/{} records answered ({rate:.0}/s{eta})", self.done, self.total)
    }

    fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}

/// What one answered batch changes: counts, the rejects file, the checkpoint.
struct Books {
    counts: BTreeMap<String, u64>,
    rejects: Option<std::io::BufWriter<std::fs::File>>,
    checkpoint: Option<(PathBuf, Checkpoint)>,
}

impl Books {
    fn answered(&mut self, lines: &[Line], results: &[RecordResult]) -> anyhow::Result<()> {
        for (line, r) in lines.iter().zip(results) {
            *self.counts.entry(status_name(r.status).to_owned()).or_default() += 1;
            if let (Some(w), true) = (&mut self.rejects, r.status == Status::Rejected as i32) {
                serde_json::to_writer(&mut *w, &reject_line(line, r))?;
                w.write_all(b"\n")?;
            }
        }
        if let Some(w) = &mut self.rejects {
            w.flush()?;
        }
        if let Some((path, c)) = &mut self.checkpoint {
            c.answered += lines.len();
            c.counts.clone_from(&self.counts);
            c.save(path)?;
        }
        Ok(())
    }
}

/// The gateways a load goes to (`--addr a,b,…`): batches spread round-robin over them (a
/// stream, `--stream`, stays on one until it fails). A batch
/// whose gateway fails (unreachable, killed before answering) goes again to the next one, with the
/// same records and so the same event ids: a gateway that already published them answers
/// DUPLICATE, another one publishes them again under the same `ce_id` (consumers de-duplicate on
/// `ce_id`, docs/consuming.md).
pub(crate) struct Gateways {
    all: Vec<(String, IngestClient<tonic::transport::Channel>)>,
    next: usize,
    /// When each gateway last failed.
    down: Vec<Option<Instant>>,
}

/// How often one batch is sent before the load gives up (its checkpoint keeps what was answered).
const ATTEMPTS: u32 = 8;

/// How long a failed gateway is passed over while another one is up.
const DOWN_FOR: Duration = Duration::from_secs(10);

impl Gateways {
    async fn new(connect: &ConnectArgs) -> anyhow::Result<Self> {
        Self::connect(connect.addresses(), &connect.auth()).await
    }

    /// The gateways `addresses`, reached with `auth`.
    pub(crate) async fn connect(addresses: Vec<&str>, auth: &hutong_client::ClientAuth) -> anyhow::Result<Self> {
        anyhow::ensure!(!addresses.is_empty(), "--addr names no gateway");
        if let [addr] = addresses[..] {
            // One gateway: one that cannot be reached (or refuses the identity) is said at once.
            let channel = auth.connect(addr).await?;
            return Ok(Self { all: vec![(addr.to_owned(), IngestClient::new(channel))], next: 0, down: vec![None] });
        }
        let all = addresses
            .into_iter()
            .map(|addr| {
                // Connected when first used: a gateway that is down at the start is one to fail
                // over. A host that does not answer, or a connection that goes silent, fails
                // within seconds instead of the system's TCP timeouts.
                let channel = auth
                    .endpoint(addr)?
                    .connect_timeout(Duration::from_secs(5))
                    .http2_keep_alive_interval(Duration::from_secs(15))
                    .keep_alive_timeout(Duration::from_secs(10))
                    .keep_alive_while_idle(true)
                    .connect_lazy();
                anyhow::Ok((addr.to_owned(), IngestClient::new(channel)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let down = vec![None; all.len()];
        Ok(Self { all, next: 0, down })
    }

    /// The next gateway, passing over those that failed lately unless all did.
    fn pick(&mut self) -> usize {
        let n = self.all.len();
        let up = |i: usize| self.down[i].is_none_or(|t| t.elapsed() > DOWN_FOR);
        let i = (0..n).map(|k| (self.next + k) % n).find(|&i| up(i)).unwrap_or(self.next % n);
        self.next = i + 1;
        i
    }

    fn client(&mut self, i: usize) -> &mut IngestClient<tonic::transport::Channel> {
        &mut self.all[i].1
    }

    /// Sends `batch` (authorised by `auth`) to the next gateway, and again to the next while
    /// one fails in a way worth another try.
    pub(crate) async fn submit(
        &mut self,
        auth: &hutong_client::ClientAuth,
        batch: &SubmitRequest,
    ) -> anyhow::Result<SubmitResponse> {
        let mut failures = 0;
        loop {
            let g = self.pick();
            let mut req = Request::new(batch.clone());
            auth.authorize(&mut req);
            match self.client(g).submit(req).await {
                Ok(r) => return Ok(r.into_inner()),
                Err(s) => {
                    failures += 1;
                    self.failed(g, &s, failures).await?;
                }
            }
        }
    }

    /// After gateway `i` failed with `status` (the `failures`-th time in a row for this batch):
    /// an error unless it is worth sending again; else a pause before the next attempt.
    async fn failed(&mut self, i: usize, status: &tonic::Status, failures: u32) -> anyhow::Result<()> {
        use tonic::Code;
        let addr = &self.all[i].0;
        // RESOURCE_EXHAUSTED: the gateway refused the batch before publishing anything (its
        // admission budget, a full producer queue); another replica may take it.
        let again = matches!(
            status.code(),
            Code::Unavailable | Code::Unknown | Code::Cancelled | Code::DeadlineExceeded | Code::ResourceExhausted
        );
        if !again || failures >= ATTEMPTS {
            return Err(anyhow::Error::from(status.clone()).context(format!("gateway {addr}")));
        }
        self.down[i] = Some(Instant::now());
        let pause = Duration::from_millis(100 << failures.min(5));
        let cause = std::error::Error::source(status).map(|e| format!(": {e}")).unwrap_or_default();
        eprintln!(
            "gateway {addr} failed ({:?}: {}{}); sending the batch again {} in {pause:?}",
            status.code(),
            status.message(),
            cause,
            if self.all.len() > 1 { "to the next gateway" } else { "to it" }
        );
        tokio::time::sleep(pause).await;
        Ok(())
    }
}

/// A rejected record as an NDJSON wrapper (ingestible again once fixed) with its place and
/// violations.
fn reject_line(line: &Line, r: &RecordResult) -> serde_json::Value {
    let rec = &line.record;
    let mut out = serde_json::json!({
        "source_id": rec.source_id,
        "revision": rec.revision,
        "op": match hutong_proto::v1::Op::try_from(rec.op) {
            Ok(hutong_proto::v1::Op::Delete) => "DELETE",
            Ok(hutong_proto::v1::Op::Event) => "EVENT",
            _ => "UPSERT",
        },
        "line": line.number,
    });
    if let Some(sheet) = &line.sheet {
        out["sheet"] = sheet.clone().into();
    }
    match (rec.charset.is_empty(), decoded_payload(rec)) {
        (true, Some(p)) => out["payload"] = p,
        _ => {
            use base64::Engine as _;
            out["payload_base64"] = base64::engine::general_purpose::STANDARD.encode(&rec.payload).into();
            if !rec.charset.is_empty() {
                out["charset"] = rec.charset.clone().into();
            }
        }
    }
    out["violations"] = violations(&r.violations);
    out
}

fn create_private(path: &Path, append: bool) -> anyhow::Result<std::fs::File> {
    let mut o = std::fs::OpenOptions::new();
    o.create(true);
    if append {
        o.append(true);
    } else {
        o.write(true).truncate(true);
    }
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    let file = o.open(path).with_context(|| format!("opening {}", path.display()))?;
    // An existing file keeps its mode when opened: made private all the same.
    #[cfg(unix)]
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    Ok(file)
}

/// `path` with `suffix` after its whole name (`load.ckpt` → `load.ckpt.lock`).
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Ctrl-C or SIGTERM.
async fn interrupted() {
    let terminate = async {
        #[cfg(unix)]
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
            return;
        }
        std::future::pending::<()>().await;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}

/// Holds `<checkpoint>.lock` for the load: two runs on one checkpoint would both send the rest.
fn lock_checkpoint(path: &Path) -> anyhow::Result<std::fs::File> {
    let lock_path = with_suffix(path, ".lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("opening {}", lock_path.display()))?;
    match lock.try_lock() {
        Ok(()) => Ok(lock),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "{}: another hutong ingest is running this load (it holds {})",
            path.display(),
            lock_path.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => Err(e).with_context(|| format!("locking {}", lock_path.display())),
    }
}

pub(crate) async fn run(args: IngestArgs) -> anyhow::Result<ExitCode> {
    let declared = match &args.input.id_field {
        Some(_) => None,
        None => declared_id_field(&args.schemas, args.connect.identity_name(), &args.kind),
    };
    let lines = args.input.read(&args.kind, declared.as_deref(), true)?;
    let file = args.input.file.display().to_string();

    // Where a checkpointed load stands.
    let mut start = 0usize;
    let mut counts = BTreeMap::new();
    let _lock = args.checkpoint.as_deref().map(lock_checkpoint).transpose()?;
    let checkpoint = match &args.checkpoint {
        None => None,
        Some(path) => {
            let bytes = std::fs::read(&args.input.file).with_context(|| format!("reading {file}"))?;
            let fresh = Checkpoint {
                sha256: hex::encode(sha2::Sha256::digest(&bytes)),
                file: file.clone(),
                kind: args.kind.clone(),
                identity: args.connect.identity_name().map(str::to_owned),
                reading: args.input.reading(declared.as_deref()),
                records: lines.len(),
                answered: 0,
                counts: BTreeMap::new(),
            };
            match Checkpoint::load(path)? {
                Some(c) if !args.restart => {
                    let same =
                        Checkpoint { answered: 0, counts: BTreeMap::new(), file: fresh.file.clone(), ..c.clone() };
                    anyhow::ensure!(
                        same == fresh && c.answered <= c.records,
                        "{}: the checkpoint is of another load ({} of kind {} as {}, read as {}, {} records, \
                         SHA-256 {}…): a new export starts over with --restart (its records already published are \
                         answered DUPLICATE), or name another --checkpoint",
                        path.display(),
                        c.file,
                        c.kind,
                        c.identity.as_deref().unwrap_or("-"),
                        c.reading,
                        c.records,
                        &c.sha256[..12.min(c.sha256.len())],
                    );
                    eprintln!(
                        "resuming {file} at record {} of {} ({} answered before; checkpoint {})",
                        c.answered + 1,
                        c.records,
                        c.answered,
                        path.display()
                    );
                    start = c.answered;
                    counts.clone_from(&c.counts);
                    Some((path.clone(), c))
                }
                _ => {
                    fresh.save(path)?;
                    Some((path.clone(), fresh))
                }
            }
        }
    };
    let rejects = match &args.rejects {
        Some(path) => Some(std::io::BufWriter::new(create_private(path, start > 0)?)),
        None => None,
    };
    let mut books = Books { counts, rejects, checkpoint };

    let lines = std::sync::Arc::new(lines);
    let total = lines.len();
    let size = args.batch_size.max(1);
    let mut progress = Progress::new(total, start);
    let auth = args.connect.auth();
    let mut gateways = Gateways::new(&args.connect).await?;
    // Kept for the per-record output only (a quiet bulk load keeps counts).
    let keep = !args.quiet;
    let mut answered = start;
    let mut results: Vec<RecordResult> = Vec::new();
    let mut answer = |chunk: &[Line], resp: SubmitResponse| -> anyhow::Result<()> {
        anyhow::ensure!(
            resp.results.len() == chunk.len(),
            "gateway answered {} of {} records of a batch",
            resp.results.len(),
            chunk.len()
        );
        books.answered(chunk, &resp.results)?;
        progress.advance(chunk.len());
        answered += chunk.len();
        if keep {
            results.extend(resp.results);
        }
        Ok(())
    };
    let batch = move |lines: &[Line], i: usize| SubmitRequest {
        batch_id: format!("{file}#{}", (start / size) + i),
        records: lines[start + i * size..(start + (i + 1) * size).min(lines.len())]
            .iter()
            .map(|l| l.record.clone())
            .collect(),
    };
    let batches = (total - start).div_ceil(size);
    let sending = async {
        let chunks: Vec<&[Line]> = lines[start..].chunks(size).collect();
        if args.stream {
            // One stream at a time; when its gateway fails, a new one on the next gateway goes on
            // from the first batch not answered.
            let mut next = 0;
            let mut failures = 0;
            while next < batches {
                let g = gateways.pick();
                // Requests are made as the stream is read, not all at once.
                let (all, make) = (std::sync::Arc::clone(&lines), batch.clone());
                let mut req = Request::new(futures::stream::iter(next..batches).map(move |i| make(&all, i)));
                auth.authorize(&mut req);
                let failed = match gateways.client(g).submit_stream(req).await {
                    Ok(stream) => {
                        let mut stream = stream.into_inner();
                        let mut failed = None;
                        while let Some(resp) = stream.next().await {
                            match resp {
                                Ok(r) => {
                                    let chunk =
                                        chunks.get(next).context("the gateway answered more batches than were sent")?;
                                    answer(chunk, r)?;
                                    next += 1;
                                    failures = 0;
                                }
                                Err(s) => {
                                    failed = Some(s);
                                    break;
                                }
                            }
                        }
                        // A stream that ends before every batch is answered is a failure too.
                        failed.or_else(|| {
                            (next < batches).then(|| {
                                tonic::Status::unavailable(format!(
                                    "the answers ended after {next} of {batches} batches"
                                ))
                            })
                        })
                    }
                    Err(s) => Some(s),
                };
                if let Some(s) = failed {
                    failures += 1;
                    gateways.failed(g, &s, failures).await?;
                }
            }
        } else {
            for (i, chunk) in chunks.iter().enumerate() {
                let resp = gateways.submit(&auth, &batch(&lines, i)).await?;
                answer(chunk, resp)?;
            }
        }
        anyhow::Ok(())
    };
    // Ctrl-C (or SIGTERM) stops the load after the last answered batch; the checkpoint has it.
    let sent = tokio::select! {
        r = sending => r,
        () = interrupted() => Err(anyhow::anyhow!("interrupted")),
    };
    progress.finish();
    if let Err(e) = sent {
        let resume = match &args.checkpoint {
            Some(p) => format!("; the same command with --checkpoint {} goes on from there", p.display()),
            None => "; with --checkpoint FILE a load goes on where it stopped".to_owned(),
        };
        return Err(e.context(format!("{answered} of {total} records answered{resume}")));
    }
    anyhow::ensure!(answered == total, "gateway answered {answered} of {total} records");
    if let Some((path, _)) = &books.checkpoint {
        std::fs::remove_file(path).with_context(|| format!("removing {}", path.display()))?;
        let _ = std::fs::remove_file(with_suffix(path, ".lock"));
    }

    let this_run = &lines[start..];
    if args.json {
        for (line, r) in this_run.iter().zip(&results) {
            let mut j = record_result(r);
            j["line"] = line.number.into();
            if let Some(sheet) = &line.sheet {
                j["sheet"] = sheet.clone().into();
            }
            println!("{j}");
        }
    } else {
        print_summary(&args, &books.counts, total, this_run, &results);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_summary(
    args: &IngestArgs,
    counts: &BTreeMap<String, u64>,
    total: usize,
    lines: &[Line],
    results: &[RecordResult],
) {
    let count = |s: Status| counts.get(status_name(s as i32)).copied().unwrap_or(0);
    println!(
        "{}: {total} records of kind {}: {} published, {} rejected, {} duplicate",
        args.input.file.display(),
        args.kind,
        count(Status::Published),
        count(Status::Rejected),
        count(Status::Duplicate),
    );
    if let Some(p) = args.rejects.as_ref().filter(|_| count(Status::Rejected) > 0) {
        println!("  rejected records with their violations: {}", p.display());
    }
    if args.quiet {
        return;
    }
    for (line, r) in lines.iter().zip(results) {
        let receipts: Vec<String> =
            r.receipts.iter().map(|x| format!("{}[{}]@{}", x.topic, x.partition, x.offset)).collect();
        let at = match &line.sheet {
            Some(s) => format!("{s}!{}", line.number),
            None => line.number.to_string(),
        };
        println!("  line {at:>3}  {:<10} {:<16} {}", status_name(r.status), r.source_id, receipts.join(" "));
        for (v, kind) in
            r.violations.iter().map(|v| (v, "")).chain(r.warnings.iter().map(|v| (v, "flagged, accepted: ")))
        {
            let p = if v.pointer.is_empty() { "/" } else { &v.pointer };
            println!("             {p} [{}] {kind}{}", v.rule, v.message);
        }
    }
}

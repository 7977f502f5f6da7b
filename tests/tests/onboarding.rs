//! Connecting a department as a new user would: `docs/onboarding.md` followed step by step —
//! its commands run and its files written as the page has them — against a gateway of the
//! test's own; the HTTP face of Submit; a bulk load interrupted and resumed from its checkpoint.

use std::{
    path::Path,
    process::{Command, Output},
    time::Duration,
};

use hutong_tests::{Broker, Gateway, Setup, TEST_KEY, consume_all, copy_dir, hutong_bin, repo_root, wait_until};
use serde_json::Value;

/// One step of the guide: a file it shows whole (a fenced block with `file=PATH`), or a command
/// of a `sh` block (continuation lines joined).
#[derive(Debug)]
enum Step {
    File(String, String),
    Command(String),
}

fn guide_steps(markdown: &str) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut lines = markdown.lines();
    while let Some(line) = lines.next() {
        let Some(info) = line.strip_prefix("```") else { continue };
        let body: Vec<&str> = lines.by_ref().take_while(|l| !l.starts_with("```")).collect();
        let mut words = info.split_whitespace();
        let lang = words.next().unwrap_or_default();
        if let Some(path) = words.find_map(|w| w.strip_prefix("file=")) {
            steps.push(Step::File(path.to_owned(), body.join("\n") + "\n"));
        } else if lang == "sh" {
            let mut command = String::new();
            for l in body {
                match l.trim_end().strip_suffix('\\') {
                    Some(part) => command.push_str(part),
                    None => {
                        command.push_str(l);
                        steps.push(Step::Command(std::mem::take(&mut command).trim().to_owned()));
                    }
                }
            }
        }
    }
    steps
}

/// A working copy of what the guide touches: `schemas/`, the local policy, the examples.
fn workdir() -> anyhow::Result<tempfile::TempDir> {
    let dir = tempfile::tempdir()?;
    let root = repo_root();
    copy_dir(&root.join("schemas"), &dir.path().join("schemas"));
    copy_dir(&root.join("examples/onboarding"), &dir.path().join("examples/onboarding"));
    std::fs::create_dir_all(dir.path().join("deploy/local"))?;
    std::fs::copy(root.join("deploy/local/policy.toml"), dir.path().join("deploy/local/policy.toml"))?;
    Ok(dir)
}

/// Runs `command` as the guide's reader would, in `dir`, with `hutong` on the PATH and the test
/// gateway as the default address.
fn shell(dir: &Path, command: &str, gateway: &Gateway, bootstrap: &str) -> anyhow::Result<Output> {
    let bin = hutong_bin()?;
    let path = format!("{}:{}", bin.parent().unwrap().display(), std::env::var("PATH").unwrap_or_default());
    let command = command.replace("https://127.0.0.1:50051", &gateway.endpoint);
    Ok(Command::new("sh")
        .args(["-c", &command])
        .current_dir(dir)
        .env("PATH", path)
        .env("HUTONG_ADDR", &gateway.endpoint)
        .env("HUTONG_BROKERS", bootstrap)
        .env("HUTONG_PSEUDONYM_KEY", TEST_KEY)
        .output()?)
}

/// A log without its terminal colours (`\x1b[…m`).
fn plain(log: &str) -> String {
    let mut out = String::with_capacity(log.len());
    let mut chars = log.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            chars.by_ref().find(|c| c.is_ascii_alphabetic());
        } else {
            out.push(c);
        }
    }
    out
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn statuses(answer: &Value) -> Vec<&str> {
    answer["results"]
        .as_array()
        .map(|r| r.iter().map(|x| x["status"].as_str().unwrap_or("?")).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_onboarding_guide_takes_a_new_department_to_its_first_records() -> anyhow::Result<()> {
    let work = workdir()?;
    let dir = work.path();
    // The guide's premise: a running local stack with the development PKI.
    let init = Command::new(hutong_bin()?).args(["certs", "init"]).current_dir(dir).output()?;
    assert!(init.status.success(), "{}", text(&init.stderr));
    let broker = Broker::start()?;
    let setup = Setup {
        pki: dir.join(".hutong/pki"),
        schemas: dir.join("schemas"),
        policy: dir.join("deploy/local/policy.toml"),
        ..Setup::new()?
    };
    let gateway = Gateway::start_setup(&broker.bootstrap, setup).await?;

    let guide = std::fs::read_to_string(repo_root().join("docs/onboarding.md"))?;
    let steps = guide_steps(&guide);
    let commands: Vec<&str> =
        steps.iter().filter_map(|s| if let Step::Command(c) = s { Some(c.as_str()) } else { None }).collect();
    for verb in [
        "hutong department new",
        "hutong adapter check",
        "hutong adapter test",
        "hutong validate",
        "kill -HUP",
        "hutong ingest",
        "hutong tail",
        "curl",
    ] {
        assert!(commands.iter().any(|c| c.starts_with(verb)), "the guide has no {verb:?} step: {commands:?}");
    }
    let mut ran: Vec<(String, Output)> = Vec::new();
    for step in &steps {
        match step {
            Step::File(path, content) => std::fs::write(dir.join(path), content)?,
            Step::Command(c) if c.starts_with("kill -HUP") => {
                // The gateway of the test is the reader's `hutong serve`.
                let before = gateway.log().matches("SIGHUP: policy and TLS files reloaded").count();
                gateway.hangup()?;
                gateway.wait_log("SIGHUP: policy and TLS files reloaded", before + 1, Duration::from_secs(20))?;
                // The last reload after the signal has the new adapter: the guide's "adapters=N",
                // one more than at start.
                let log = plain(&gateway.log());
                let at_start: usize = log
                    .lines()
                    .find(|l| l.contains("standard and adapters loaded"))
                    .and_then(|l| l.split("adapters=").nth(1)?.split_whitespace().next()?.parse().ok())
                    .expect("the gateway logs its adapters at start");
                let adapters = at_start + 1;
                let needle = format!("adapters={adapters}");
                wait_until("the gateway reloads the new adapter", Duration::from_secs(20), || {
                    let log = plain(&gateway.log());
                    let after = &log[log.rfind("SIGHUP: reloading").unwrap_or(0)..];
                    Ok(after.lines().any(|l| l.contains("standard and adapters reloaded") && l.contains(&needle)))
                })
                .map_err(|e| e.context(format!("gateway log:\n{}", gateway.log())))?;
            }
            Step::Command(c) => {
                let out = shell(dir, c, &gateway, &broker.bootstrap)?;
                ran.push((c.clone(), out));
            }
        }
    }
    let output = |prefix: &str| -> &Output {
        &ran.iter().find(|(c, _)| c.starts_with(prefix)).unwrap_or_else(|| panic!("{prefix} did not run")).1
    };
    let ok = |prefix: &str| {
        let out = output(prefix);
        assert!(out.status.success(), "{prefix}: {}\n{}", text(&out.stdout), text(&out.stderr));
        text(&out.stdout)
    };

    // 2. The scaffold: code, folder, policy, certificate.
    let scaffold = ok("hutong department new");
    assert!(scaffold.contains("added [departments.tuiyi]") && scaffold.contains("next:"), "{scaffold}");
    assert!(dir.join(".hutong/pki/tuiyi.pem").exists());
    assert!(dir.join("schemas/departments/tuiyi/samples/veteran_registration.csv").exists());
    let policy = std::fs::read_to_string(dir.join("deploy/local/policy.toml"))?;
    assert!(policy.contains("[departments.tuiyi]") && policy.contains("kinds = [\"veteran_registration\"]"));
    // 3, 4. The mapping passes its checks and fixtures.
    assert!(ok("hutong adapter check").contains("1 adapter(s) pass"));
    assert!(ok("hutong adapter test").contains("2 passed, 0 failed"));
    // 5. The dry run: two rows refused, by the rules the guide names.
    let dry = output("hutong validate");
    assert_eq!(dry.status.code(), Some(1), "{}", text(&dry.stderr));
    assert!(text(&dry.stderr).contains("7 record(s): 5 valid, 2 rejected"), "{}", text(&dry.stderr));
    let lines: Vec<Value> = text(&dry.stdout).lines().map(serde_json::from_str).collect::<Result<_, _>>()?;
    let rejected: Vec<(u64, &str)> = lines
        .iter()
        .filter(|l| l["status"] == "REJECTED")
        .map(|l| (l["line"].as_u64().unwrap(), l["violations"][0]["rule"].as_str().unwrap()))
        .collect();
    assert_eq!(rejected, [(5, "consistency:citizen-id-sex"), (8, "adapter:citizen-id")]);
    // 7. The submission: as the guide says it prints; the rejects file; the checkpoint gone.
    let ingest = ok("hutong ingest");
    assert!(
        ingest.contains("7 records of kind veteran_registration: 5 published, 2 rejected, 0 duplicate"),
        "{ingest}"
    );
    assert!(!dir.join("tuiyi.ckpt").exists(), "a finished load removes its checkpoint");
    assert!(!dir.join("tuiyi.ckpt.lock").exists(), "and its lock");
    let rejects: Vec<Value> = std::fs::read_to_string(dir.join("tuiyi-rejects.ndjson"))?
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    assert_eq!(
        rejects.iter().map(|r| r["source_id"].as_str().unwrap()).collect::<Vec<_>>(),
        ["TY-2021-0004", "TY-2021-0007"]
    );
    assert_eq!(rejects[0]["violations"][0]["rule"], "consistency:citizen-id-sex");
    assert_eq!(rejects[0]["payload"]["姓名"], "程晓峰", "the record as sent, to correct and send again");
    // 8. The records on the topic, from the department its certificate names.
    let tail = ok("hutong tail");
    assert_eq!(tail.matches("/departments/tuiyi/veteran_registration").count(), 5, "{tail}");
    // HTTP: the documented curl call publishes; the same call again is answered DUPLICATE.
    let curl = |c: &str| -> anyhow::Result<Value> {
        let out = shell(dir, c, &gateway, &broker.bootstrap)?;
        assert!(out.status.success(), "{c}: {}", text(&out.stderr));
        Ok(serde_json::from_slice(&out.stdout)?)
    };
    let documented = commands.iter().find(|c| c.starts_with("curl")).unwrap();
    let first: Value = serde_json::from_slice(&output("curl").stdout)?;
    assert_eq!(first["batch_id"], "tuiyi-2026-11-20");
    assert_eq!(statuses(&first), ["PUBLISHED", "PUBLISHED"], "{first}");
    assert_eq!(first["results"][0]["receipts"][0]["topic"], "hutong.person.v2");
    assert_eq!(statuses(&curl(documented)?), ["DUPLICATE", "DUPLICATE"]);
    let on_topic = consume_all(&broker.bootstrap, "hutong.person.v2")?;
    assert_eq!(on_topic.len(), 7, "5 rows of the export and 2 records posted, each once");
    // Sending the whole export again is safe.
    let again =
        shell(dir, commands.iter().find(|c| c.starts_with("hutong ingest")).unwrap(), &gateway, &broker.bootstrap)?;
    assert!(text(&again.stdout).contains("0 published, 2 rejected, 5 duplicate"), "{}", text(&again.stdout));

    // The HTTP face refuses as the RPC does: no certificate, a kind the policy does not grant,
    // a malformed body (the record named).
    let post = |cert: Option<&str>, body: &str| -> anyhow::Result<(String, String)> {
        let mut args = vec!["-sS".to_owned(), "-o".into(), "-".into(), "-w".into(), "\n%{http_code}".into()];
        args.extend(["--cacert".into(), ".hutong/pki/ca.pem".into()]);
        if let Some(c) = cert {
            args.extend([
                "--cert".into(),
                format!(".hutong/pki/{c}.pem"),
                "--key".into(),
                format!(".hutong/pki/{c}.key"),
            ]);
        }
        args.extend(["-H".into(), "content-type: application/json".into(), "--data".into(), body.into()]);
        args.push(format!("{}/v1/submit", gateway.endpoint));
        let out = Command::new("curl").args(&args).current_dir(dir).output()?;
        let stdout = text(&out.stdout);
        let (body, code) = stdout.rsplit_once('\n').unwrap_or(("", ""));
        Ok((code.to_owned(), format!("{body}{}", text(&out.stderr))))
    };
    let record = r#"{"kind":"veteran_registration","source_id":"X1","revision":1,"payload":{"编号":"X1"}}"#;
    let (code, said) = post(Some("gongan"), &format!(r#"{{"records":[{record}]}}"#))?;
    assert_eq!(code, "403", "{said}");
    assert!(said.contains("PermissionDenied"), "{said}");
    let (code, said) = post(Some("tuiyi"), r#"{"records":[{"kind":"veteran_registration","payload":{}}]}"#)?;
    assert_eq!(code, "422", "{said}");
    assert!(said.contains("records[0]: source_id"), "{said}");
    let (code, said) = post(None, &format!(r#"{{"records":[{record}]}}"#))?;
    assert_eq!(code, "401", "no certificate, no answer: {said}");
    // Not JSON: refused before anything is read (no cross-site form posts).
    let out = Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", ".hutong/pki/ca.pem"])
        .args(["--cert", ".hutong/pki/tuiyi.pem", "--key", ".hutong/pki/tuiyi.key", "-H", "content-type: text/plain"])
        .args(["--data", &format!(r#"{{"records":[{record}]}}"#), &format!("{}/v1/submit", gateway.endpoint)])
        .current_dir(dir)
        .output()?;
    assert_eq!(text(&out.stdout), "415");
    gateway.audited("the HTTP refusal", |e| {
        e["type"] == "denied" && e["principal"] == "gongan" && e["action"] == "Submit veteran_registration"
    })?;
    gateway.audited("the HTTP submission", |e| e["type"] == "submit" && e["principal"] == "tuiyi")?;
    Ok(())
}

/// Six household rows; the fourth (in the second batch of two) is larger than the first
/// gateway's message limit, so the first run stops after two answered records.
fn bulk_export(path: &Path, note: &str) -> anyhow::Result<()> {
    let ids = [
        "330106196203150314",
        "330106196405180327",
        "330106199009010311",
        "330106194411300154",
        "330106198503120319",
        "330106197003150330",
    ];
    let mut text = String::new();
    for (i, id) in ids.iter().enumerate() {
        let sex = if id.as_bytes()[16] % 2 == 1 { "男" } else { "女" };
        let filler = if i == 3 { "备".repeat(3000) } else { note.to_owned() };
        text.push_str(
            &serde_json::json!({
                "GMSFHM": id, "XM": format!("居民{i}"), "XB": sex, "MZ": "01", "CSRQ": &id[6..14],
                "HJDZ_XZQH": "330106", "HJDZ_QHNXXDZ": "文三路石灰桥社区", "BZ": filler, "VER": 3,
            })
            .to_string(),
        );
        text.push('\n');
    }
    Ok(std::fs::write(path, text)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_bulk_load_resumes_from_its_checkpoint_without_duplicates() -> anyhow::Result<()> {
    let broker = Broker::start()?;
    let work = tempfile::tempdir()?;
    let export = work.path().join("hj.ndjson");
    bulk_export(&export, "")?;
    let checkpoint = work.path().join("hj.ckpt");
    let ingest = |gateway: &Gateway| -> anyhow::Result<Output> {
        let mut cmd = Command::new(hutong_bin()?);
        cmd.args(["ingest", "-k", "household_registration", "--batch-size", "2", "--id-field", "GMSFHM"])
            .args(["--revision-field", "VER", "--checkpoint"])
            .arg(&checkpoint)
            .arg("--rejects")
            .arg(work.path().join("rejects.ndjson"))
            .arg(&export)
            .args(gateway.cli_args("gongan"))
            .current_dir(repo_root());
        Ok(cmd.output()?)
    };
    let small = Gateway::start_with(
        &broker.bootstrap,
        hutong_tests::shared_pki()?,
        &repo_root().join("schemas"),
        "\n[limits]\nmax-message-bytes = 6000\nmax-payload-bytes = 6000\n",
    )
    .await?;
    // Over HTTP, a body past the same limit is refused as too large.
    let pki = hutong_tests::shared_pki()?;
    let big = format!(
        r#"{{"records":[{{"kind":"household_registration","source_id":"x","revision":1,"payload":"{}"}}]}}"#,
        "x".repeat(8000)
    );
    let out = Command::new("curl")
        .args(["-sS", "-w", "\n%{http_code}", "-H", "content-type: application/json", "--data-binary", "@-"])
        .arg("--cacert")
        .arg(pki.join("ca.pem"))
        .arg("--cert")
        .arg(pki.join("gongan.pem"))
        .arg("--key")
        .arg(pki.join("gongan.key"))
        .arg(format!("{}/v1/submit", small.endpoint))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write as _;
            c.stdin.take().unwrap().write_all(big.as_bytes())?;
            c.wait_with_output()
        })?;
    let answer = text(&out.stdout);
    assert!(answer.ends_with("\n413") && answer.contains("max-message-bytes"), "{answer}");

    let first = ingest(&small)?;
    assert!(!first.status.success());
    let said = text(&first.stderr);
    assert!(said.contains("2 of 6 records answered") && said.contains("goes on from there"), "{said}");
    let saved: Value = serde_json::from_slice(&std::fs::read(&checkpoint)?)?;
    assert_eq!((saved["answered"].as_u64(), saved["records"].as_u64()), (Some(2), Some(6)), "{saved}");
    assert_eq!(saved["counts"]["PUBLISHED"], 2);

    // Another version of the file is not resumed from this checkpoint.
    let original = std::fs::read(&export)?;
    bulk_export(&export, "改")?;
    let other = ingest(&small)?;
    assert!(text(&other.stderr).contains("the checkpoint is of another load"), "{}", text(&other.stderr));
    std::fs::write(&export, original)?;
    drop(small);

    // A gateway that takes the large record: the same command goes on at record 3.
    let roomy = Gateway::start(&broker.bootstrap).await?;
    let second = ingest(&roomy)?;
    assert!(second.status.success(), "{}", text(&second.stderr));
    assert!(text(&second.stderr).contains("resuming") && text(&second.stderr).contains("at record 3 of 6"));
    let summary = text(&second.stdout);
    assert!(
        summary.contains("6 records of kind household_registration: 6 published, 0 rejected, 0 duplicate"),
        "{summary}"
    );
    assert!(!checkpoint.exists());
    // Each record once on the topic: the two answered before the interruption were not sent again.
    let people = consume_all(&broker.bootstrap, "hutong.person.v2")?;
    let mut ids: Vec<&str> = people.iter().filter_map(|m| m.headers.get("ce_id").map(String::as_str)).collect();
    assert_eq!(ids.len(), 6);
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 6);
    Ok(())
}

/// `hutong department new` refuses what would leave a department half made.
#[test]
fn department_new_refuses_bad_ids_and_existing_departments() -> anyhow::Result<()> {
    let work = workdir()?;
    let run = |args: &[&str]| -> anyhow::Result<Output> {
        Ok(Command::new(hutong_bin()?).args(["department", "new"]).args(args).current_dir(work.path()).output()?)
    };
    let out = run(&["Tui-Yi", "--name", "退役军人事务局", "--kind", "veteran_registration", "--pki", "-"])?;
    assert!(!out.status.success() && text(&out.stderr).contains("lower-case letters and digits"));
    let out = run(&["gongan", "--name", "公安", "--kind", "x", "--pki", "-"])?;
    assert!(text(&out.stderr).contains("the department is there already"), "{}", text(&out.stderr));
    let out = run(&["laoling", "--name", "老龄办", "--kind", "elder", "--entity", "pet", "--pki", "-"])?;
    assert!(text(&out.stderr).contains("--entity pet"), "{}", text(&out.stderr));
    assert!(!work.path().join("schemas/departments/laoling").exists(), "nothing made");
    // Made: a new code in the department list, kept in its layout; no certificate with `--pki -`.
    let out = run(&["laoling", "--name", "老龄办", "--kind", "elder_survey", "--pki", "-"])?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let codes: Value = serde_json::from_slice(&std::fs::read(work.path().join("schemas/codes/department.json"))?)?;
    assert!(codes["codes"].as_array().unwrap().iter().any(|c| c["code"] == "laoling" && c["name"] == "老龄办"));
    let skeleton = std::fs::read_to_string(work.path().join("schemas/departments/laoling/elder_survey.toml"))?;
    assert!(skeleton.contains("department = \"laoling\"") && skeleton.contains("entity = \"person\""));
    // The skeleton is a draft: named, it is checked (and says what is missing); it stops no other
    // department's adapters from loading.
    let hutong_in = |args: &[&str]| -> anyhow::Result<Output> {
        Ok(Command::new(hutong_bin()?)
            .args(args)
            .current_dir(work.path())
            .env("HUTONG_PSEUDONYM_KEY", TEST_KEY)
            .output()?)
    };
    let named = hutong_in(&["adapter", "check", "schemas/departments/laoling"])?;
    assert!(
        !named.status.success() && text(&named.stderr).contains("does not fill its key"),
        "{}",
        text(&named.stderr)
    );
    let all = hutong_in(&["adapter", "check"])?;
    assert!(all.status.success(), "{}", text(&all.stderr));
    assert!(text(&all.stdout).contains("draft schemas/departments/laoling/elder_survey.toml"), "{}", text(&all.stdout));
    let other = hutong_in(&[
        "validate",
        "-d",
        "gongan",
        "-k",
        "household_registration",
        "schemas/departments/gongan/samples/household_registration.ndjson",
    ])?;
    assert_eq!(other.status.code(), Some(1), "the sample's own rejects only: {}", text(&other.stderr));
    // A name that would break the TOML or the policy is refused; quotes are escaped.
    let out = run(&["laoling2", "--name", "老龄\n办", "--kind", "x", "--pki", "-"])?;
    assert!(text(&out.stderr).contains("on one line"), "{}", text(&out.stderr));
    let out = run(&["canlian", "--name", "残联\"办", "--kind", "disability_cert", "--pki", "-"])?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let skeleton = std::fs::read_to_string(work.path().join("schemas/departments/canlian/disability_cert.toml"))?;
    let parsed: toml::Table = toml::from_str(&skeleton)?;
    assert_eq!(parsed["title"].as_str(), Some("残联\"办 disability_cert"));
    // A policy file that is not there: nothing is made.
    let out = run(&["jiaoyu", "--name", "教育局", "--kind", "student", "--pki", "-", "--policy", "nowhere.toml"])?;
    assert!(text(&out.stderr).contains("--policy nowhere.toml"), "{}", text(&out.stderr));
    assert!(!work.path().join("schemas/departments/jiaoyu").exists());
    assert!(!work.path().join(".hutong").exists());
    Ok(())
}

/// The Python department client of `examples/python` (grpcio, stubs generated from `proto/`)
/// over mTLS: its answers are the gateway's, and it sends the bytes `hutong ingest` sends (the
/// same records are answered DUPLICATE, whoever sent them first).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_department_client_submits_over_mtls() -> anyhow::Result<()> {
    let broker = Broker::start()?;
    let gateway = Gateway::start(&broker.bootstrap).await?;
    let stubs = tempfile::tempdir()?;
    let sample = "schemas/departments/gongan/samples/household_registration.ndjson";
    let port = gateway.endpoint.rsplit(':').next().unwrap().to_owned();
    let python = |identity: &str| -> anyhow::Result<Output> {
        let pki = &gateway.pki;
        Ok(Command::new(hutong_tests::python())
            .arg(repo_root().join("examples/python/hutong_department.py"))
            .args(["--gateway", &format!("127.0.0.1:{port}"), "--kind", "household_registration"])
            .arg("--ca")
            .arg(pki.join("ca.pem"))
            .arg("--cert")
            .arg(pki.join(format!("{identity}.pem")))
            .arg("--key")
            .arg(pki.join(format!("{identity}.key")))
            .arg("--stubs")
            .arg(stubs.path())
            .arg(sample)
            .current_dir(repo_root())
            .output()?)
    };
    let answers = |out: &Output| -> anyhow::Result<Vec<Value>> {
        Ok(text(&out.stdout).lines().map(serde_json::from_str).collect::<Result<_, _>>()?)
    };
    let count = |answers: &[Value], status: &str| answers.iter().filter(|a| a["status"] == status).count();

    let first = python("gongan")?;
    assert_eq!(first.status.code(), Some(1), "the sample has rows rejected on purpose: {}", text(&first.stderr));
    let first = answers(&first)?;
    assert_eq!((first.len(), count(&first, "PUBLISHED"), count(&first, "REJECTED")), (48, 44, 4));
    let rejected: Vec<&str> = first
        .iter()
        .filter(|a| a["status"] == "REJECTED")
        .map(|a| a["violations"][0]["rule"].as_str().unwrap())
        .collect();
    assert!(rejected.contains(&"format:gb11643"), "{rejected:?}");
    // The same export through `hutong ingest`: every published record is a duplicate, by event id.
    let mut cmd = Command::new(hutong_bin()?);
    cmd.args(["ingest", "-k", "household_registration", "--json", sample]).args(gateway.cli_args("gongan"));
    let ingest = cmd.current_dir(repo_root()).output()?;
    assert!(ingest.status.success(), "{}", text(&ingest.stderr));
    let again = answers(&ingest)?;
    assert_eq!(count(&again, "DUPLICATE"), 44);
    for (p, h) in first.iter().zip(&again).filter(|(p, _)| p["status"] == "PUBLISHED") {
        assert_eq!(p["receipts"][0]["event_id"], h["receipts"][0]["event_id"], "{p} / {h}");
    }
    // Another department's kind: refused as a call (exit 2), nothing published.
    let refused = python("minzheng")?;
    assert_eq!(refused.status.code(), Some(2));
    assert!(text(&refused.stderr).contains("PERMISSION_DENIED"), "{}", text(&refused.stderr));
    Ok(())
}

/// Ctrl-C stops a load after an answered batch, leaving the checkpoint where it stopped; a second
/// run on the same checkpoint while the first goes on is refused; the same command then finishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_a_load_at_an_answered_batch_and_a_second_run_is_refused() -> anyhow::Result<()> {
    use hutong_standard::checks::{citizen_id_sex, synthetic_citizen_id};
    let broker = Broker::start()?;
    let gateway = Gateway::start(&broker.bootstrap).await?;
    let work = tempfile::tempdir()?;
    let export = work.path().join("big.csv");
    let total = 8_000;
    let mut csv = String::from("GMSFHM,XM,XB,MZ,CSRQ,HJDZ_XZQH,HJDZ_QHNXXDZ,VER\n");
    for i in 0..total {
        let id = synthetic_citizen_id(i);
        let sex = if citizen_id_sex(&id) == "1" { "男" } else { "女" };
        csv.push_str(&format!("{id},居民{i},{sex},01,{},330106,文三路{i}号,1\n", &id[6..14]));
    }
    std::fs::write(&export, csv)?;
    let checkpoint = work.path().join("big.ckpt");
    let command = || -> anyhow::Result<Command> {
        let mut cmd = Command::new(hutong_bin()?);
        cmd.args(["ingest", "-k", "household_registration", "--batch-size", "5", "--quiet"])
            .args(["--id-field", "GMSFHM", "--revision-field", "VER", "--checkpoint"])
            .arg(&checkpoint)
            .arg(&export)
            .args(gateway.cli_args("gongan"))
            .current_dir(repo_root())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        Ok(cmd)
    };
    let answered = || -> u64 {
        std::fs::read(&checkpoint)
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .and_then(|c| c["answered"].as_u64())
            .unwrap_or(0)
    };
    let first = command()?.spawn()?;
    wait_until("the first batches answered", Duration::from_secs(60), || Ok(answered() > 0))?;
    let second = command()?.output()?;
    assert!(text(&second.stderr).contains("another hutong ingest is running this load"), "{}", text(&second.stderr));
    let status = std::process::Command::new("kill").args(["-INT", &first.id().to_string()]).status()?;
    assert!(status.success());
    let out = first.wait_with_output()?;
    let said = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(said.contains("interrupted") && said.contains("goes on from there"), "{said}");
    let stopped = answered();
    assert!(stopped > 0 && stopped < total as u64 && stopped % 5 == 0, "stopped at an answered batch: {stopped}");
    let rest = command()?.output()?;
    assert!(rest.status.success(), "{}", text(&rest.stderr));
    assert!(text(&rest.stderr).contains(&format!("at record {} of {total}", stopped + 1)));
    // The batch in flight at Ctrl-C may have been published without its answer arriving: sent
    // again, it is answered DUPLICATE, so every record is on the bus once.
    let summary = text(&rest.stdout);
    let count = |what: &str| -> u64 {
        summary
            .split(&format!(" {what}"))
            .next()
            .and_then(|s| s.rsplit(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(u64::MAX)
    };
    let (published, duplicate) = (count("published"), count("duplicate"));
    assert_eq!(published + duplicate, total as u64, "{summary}");
    assert!(duplicate <= 5, "at most the batch in flight: {summary}");
    assert_eq!(count("rejected"), 0, "{summary}");
    Ok(())
}

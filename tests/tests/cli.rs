//! The `hutong` binary's dry run and its errors, as a user runs them.
use hutong_tests::{hutong, repo_root};
use serde_json::Value;

#[test]
fn validate_prints_one_line_per_record_and_fails_on_rejects() -> anyhow::Result<()> {
    let out = hutong(&[
        "validate",
        "--department",
        "gongan",
        "--kind",
        "household_registration",
        "schemas/departments/gongan/samples/household_registration.ndjson",
    ])?;
    assert_eq!(out.status.code(), Some(1), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<Value> =
        String::from_utf8(out.stdout)?.lines().map(serde_json::from_str).collect::<Result<_, _>>()?;
    assert_eq!(lines.len(), 48, "one line per sample row");
    let rejected: Vec<&str> =
        lines.iter().filter(|l| l["status"] == "REJECTED").map(|l| l["source_id"].as_str().unwrap()).collect();
    assert_eq!(rejected, ["110105198001010210", "110105198001010315", "110105198001010411", "330106197511060526"]);
    let first = &lines[0]["records"][0];
    assert_eq!(first["entity"], "person");
    assert_eq!(first["topic"], "hutong.person.v2");
    assert_eq!(first["value"]["name"], "张伟");
    // One source's fact about the person: keyed by (entity key, department, kind, source id).
    let person_key = first["value"]["person_key"].as_str().unwrap();
    let fact: Vec<String> = serde_json::from_str(first["key"].as_str().unwrap())?;
    // 公安's source id is the 公民身份号码: it travels pseudonymised (`<key id>:<HMAC>`).
    assert_eq!(fact[..3], [person_key, "gongan", "household_registration"]);
    let (kid, mac) = fact[3].split_once(':').expect("a tagged pseudonym");
    assert_eq!((kid.len(), mac), (9, hutong_tests::expected_person_key("110105198001010235").as_str()));
    Ok(())
}

#[test]
fn validate_of_a_clean_file_exits_zero() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let f = dir.path().join("ok.ndjson");
    std::fs::write(&f, "{\"GMSFHM\":\"11010519491231002X\",\"XM\":\"张三\",\"XB\":\"2\"}\n")?;
    let out = hutong(&["validate", "-d", "gongan", "-k", "household_registration", f.to_str().unwrap()])?;
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("1 record(s): 1 valid, 0 rejected"));
    let lines: Vec<Value> =
        String::from_utf8(out.stdout)?.lines().map(serde_json::from_str).collect::<Result<_, _>>()?;
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line = &lines[0];
    assert_eq!((line["line"].as_u64(), line["status"].as_str()), (Some(1), Some("VALID")));
    assert_eq!(line["source_id"], "ok.ndjson:1", "a bare payload's id is <file>:<line>");
    let records = line["records"].as_array().unwrap();
    assert_eq!(records.len(), 1);
    let (r, v) = (&records[0], &records[0]["value"]);
    let key = hutong_tests::expected_person_key("11010519491231002X");
    assert_eq!((r["entity"].as_str(), r["topic"].as_str()), (Some("person"), Some("hutong.person.v2")));
    // 公安's record key is personal data: it travels pseudonymised like the citizen ID.
    let kid = format!("k{}", &hutong_tests::expected_person_key("hutong/key-id")[..8]);
    let source = format!("{kid}:{}", hutong_tests::expected_person_key("ok.ndjson:1"));
    assert_eq!(r["key"], format!(r#"["{key}","gongan","household_registration","{source}"]"#));
    assert_eq!(v["person_key"], key);
    assert_eq!((v["name"].as_str(), v["sex"].as_str()), (Some("张三"), Some("2")));
    // The dry run shows the shared topic's view: the citizen ID pseudonymised with the key's id.
    let (kid, mac) = v["citizen_id"].as_str().unwrap().split_once(':').expect("a tagged pseudonym");
    assert_eq!((kid.len(), mac), (9, key.as_str()));
    assert!(!line.to_string().contains("11010519491231002X"), "{line}");
    Ok(())
}

#[test]
fn bad_config_and_unknown_kind_get_clear_errors() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "[kafka]\nbootstrap-server = \"x\"\n")?;
    let out = hutong(&["serve", "--config", cfg.to_str().unwrap()])?;
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bootstrap-server"), "{err}");

    let f = dir.path().join("x.ndjson");
    std::fs::write(&f, "{\"a\":1}\n")?;
    let out = hutong(&["validate", "-d", "gongan", "-k", "no_such_kind", f.to_str().unwrap()])?;
    assert_eq!(out.status.code(), Some(1));
    let line: Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(line["violations"][0]["rule"], "record:kind");
    Ok(())
}

#[test]
fn schema_lint_passes_and_registry_is_in_sync() -> anyhow::Result<()> {
    let out = hutong(&["schema", "lint"])?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains(": 0 issue(s)"), "{stdout}");

    // And it finds what is wrong: a schema without its title, an entity that is not registered.
    let dir = tempfile::tempdir()?;
    let schemas = dir.path().join("schemas");
    hutong_tests::copy_dir(&repo_root().join("schemas"), &schemas);
    let grid = schemas.join("standard/v1/grid.json");
    let mut doc: Value = serde_json::from_str(&std::fs::read_to_string(&grid)?)?;
    doc.as_object_mut().unwrap().remove("title");
    std::fs::write(&grid, doc.to_string())?;
    let mut pet: Value = serde_json::from_str(&std::fs::read_to_string(schemas.join("standard/v1/building.json"))?)?;
    pet["$id"] = "https://schemas.hutong.dev/standard/v1/pet.json".into();
    pet["title"] = "宠物".into();
    std::fs::write(schemas.join("standard/v1/pet.json"), pet.to_string())?;
    let out = hutong(&["schema", "lint", "--schemas", schemas.to_str().unwrap()])?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let issues: Vec<&str> = stdout.lines().filter(|l| l.starts_with("✗ ")).collect();
    assert!(issues.iter().any(|l| l.contains("grid.json") && l.contains("title")), "{stdout}");
    assert!(issues.iter().any(|l| l.contains("hutong.pet.v2-value") && l.contains("not registered")), "{stdout}");
    assert!(stdout.contains(&format!(": {} issue(s)", issues.len())), "{stdout}");
    Ok(())
}

#[test]
fn schema_compat_exit_codes_follow_the_contract() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let write = |name: &str, v: serde_json::Value| {
        let p = dir.path().join(name);
        std::fs::write(&p, v.to_string()).unwrap();
        p.to_str().unwrap().to_owned()
    };
    let old = write(
        "old.json",
        serde_json::json!({"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": false}),
    );
    let added = write(
        "added.json",
        serde_json::json!({"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}}, "additionalProperties": false}),
    );
    let narrowed = write(
        "narrowed.json",
        serde_json::json!({"type": "object", "properties": {"a": {"type": "string", "maxLength": 3}}, "additionalProperties": false}),
    );
    let bad = write("bad.json", serde_json::json!(null));
    std::fs::write(dir.path().join("bad.json"), "{ not json")?;

    let out = hutong(&["schema", "compat", &old, &added])?;
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    let out = hutong(&["schema", "compat", &old, &narrowed])?;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("MAX_LENGTH_ADDED #/properties/a/maxLength"));
    // FORWARD is the same check with the two swapped.
    let out = hutong(&["schema", "compat", &narrowed, &old, "--mode", "forward"])?;
    assert_eq!(out.status.code(), Some(1));
    let out = hutong(&["schema", "compat", &old, &bad])?;
    assert_eq!(out.status.code(), Some(2));
    let out = hutong(&["schema", "diff", &old, &narrowed])?;
    assert!(String::from_utf8_lossy(&out.stdout).contains("field `a`"), "{}", String::from_utf8_lossy(&out.stdout));
    Ok(())
}

#[test]
fn an_incompatible_change_to_the_standard_is_refused_with_its_changes() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let schemas = dir.path().join("schemas");
    hutong_tests::copy_dir(&repo_root().join("schemas"), &schemas);
    let person = schemas.join("standard/v1/person.json");
    let text = std::fs::read_to_string(&person)?.replacen("\"maxLength\": 64", "\"maxLength\": 32", 1);
    std::fs::write(&person, text)?;
    let before = std::fs::read_to_string(schemas.join("registry/registry.json"))?;
    let out = hutong(&["schema", "register", "--schemas", schemas.to_str().unwrap()])?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("hutong.person.v2-value: refused"), "{stdout}");
    assert!(stdout.contains("MAX_LENGTH_DECREASED"), "{stdout}");
    assert_eq!(std::fs::read_to_string(schemas.join("registry/registry.json"))?, before, "nothing written");
    // lint sees the unregistered schema too.
    let out = hutong(&["schema", "lint", "--schemas", schemas.to_str().unwrap()])?;
    assert_eq!(out.status.code(), Some(1));
    Ok(())
}

/// From another folder, an adapter PATH inside a schemas folder is checked against that
/// folder's standard; without one, the error says once how to name the schemas folder.
#[test]
fn adapter_check_finds_the_schemas_folder_of_its_path_or_says_how_to_name_it() -> anyhow::Result<()> {
    let elsewhere = tempfile::tempdir()?;
    let run = |args: &[&str]| -> anyhow::Result<std::process::Output> {
        Ok(std::process::Command::new(hutong_tests::hutong_bin()?).args(args).current_dir(elsewhere.path()).output()?)
    };
    let dept = repo_root().join("schemas/departments/gongan");
    let out = run(&["adapter", "check", &dept.display().to_string()])?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8(out.stdout)?.contains("1 adapter(s) pass"));
    let out = run(&["adapter", "test", &dept.display().to_string()])?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = run(&["adapter", "check"])?;
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr)?;
    assert!(err.contains("--schemas DIR") && !err.contains("No such file"), "{err}");
    assert_eq!(err.matches("holds no standard").count(), 1, "said once: {err}");
    let out = run(&["adapter", "check", "--schemas", &repo_root().join("schemas").display().to_string()])?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The dry run of an export from elsewhere says the same, once.
    let sample = repo_root().join("schemas/departments/gongan/samples/household_registration.ndjson");
    let out = run(&["validate", "-d", "gongan", "-k", "household_registration", &sample.display().to_string()])?;
    let err = String::from_utf8(out.stderr)?;
    assert_eq!(out.status.code(), Some(2));
    assert!(err.contains("--schemas DIR") && !err.contains("No such file"), "{err}");
    // A cause its error already quotes is not printed twice.
    let out =
        run(&["validate", "-d", "gongan", "-k", "household_registration", "--schemas", "/nonexistent/x", "no.csv"])?;
    let err = String::from_utf8(out.stderr)?;
    assert!(err.contains("holds no standard"), "{err}");
    let schemas = repo_root().join("schemas").display().to_string();
    let out = run(&["validate", "-d", "gongan", "-k", "household_registration", "--schemas", &schemas, "missing.csv"])?;
    let err = String::from_utf8(out.stderr)?;
    assert_eq!(err.matches("No such file").count(), 1, "said once: {err}");
    Ok(())
}

/// `validate` shows what the topic carries by default and, asked for, the canonical record
/// with the citizen ID in clear.
#[test]
fn validate_shows_the_topic_view_or_the_canonical_record() -> anyhow::Result<()> {
    let file = "schemas/departments/gongan/samples/household_registration.ndjson";
    let args = ["validate", "-d", "gongan", "-k", "household_registration", file];
    let first = |out: &std::process::Output| -> anyhow::Result<Value> {
        Ok(serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().next().unwrap_or_default())?)
    };
    let topic = first(&hutong(&args)?)?;
    let id = topic["source_id"].as_str().expect("a source id").to_owned();
    assert_eq!(id.len(), 18, "公安's source id is the citizen ID");
    let shared = topic["records"][0]["value"]["citizen_id"].as_str().unwrap_or_default().to_owned();
    assert_ne!(shared, id, "pseudonymised on the topic");
    let out = hutong(&[&args[..], &["--view", "canonical"]].concat())?;
    assert!(String::from_utf8_lossy(&out.stderr).contains("personal data in clear"));
    let canonical = first(&out)?;
    assert_eq!(canonical["view"], "canonical");
    assert_eq!(canonical["records"][0]["entity"], "person");
    assert_eq!(canonical["records"][0]["record"]["citizen_id"], id.as_str(), "in clear");
    Ok(())
}

/// `ingest` sends nothing whose identity is its position in the file: bare lines need
/// `--id-field` and `--revision-field`, wrappers a `source_id`; the refusal says why, before
/// any connection is tried.
#[test]
fn ingest_refuses_records_without_a_stable_source_id() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let f = dir.path().join("export.ndjson");
    std::fs::write(&f, "{\"GMSFHM\":\"11010519491231002X\",\"XM\":\"张三\",\"XB\":\"2\",\"GXSJ\":\"2026-11-03\"}\n")?;
    let path = f.to_str().unwrap();
    // Nothing listens there: a refusal must come before any connection.
    let nowhere = ["--addr", "https://127.0.0.1:9", "--as", "gongan"];
    let ingest =
        |extra: &[&str]| hutong(&[&["ingest", "-k", "household_registration", path][..], extra, &nowhere].concat());
    // Without the adapter's declared source-id field to fall back on, the id is asked for …
    let out = ingest(&["--schemas", "/nonexistent"])?;
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("export.ndjson:1") && err.contains("--id-field") && !err.contains("connect"), "{err}");
    let err = String::from_utf8_lossy(&ingest(&["--id-field", "GMSFHM"])?.stderr).into_owned();
    assert!(err.contains("--revision-field"), "{err}");
    // … with it (公安 declares source-id = GMSFHM), only the revision is.
    let err = String::from_utf8_lossy(&ingest(&[])?.stderr).into_owned();
    assert!(err.contains("--revision-field") && !err.contains("--id-field"), "{err}");
    // With both, the file is accepted and only the (absent) gateway is missing.
    let err =
        String::from_utf8_lossy(&ingest(&["--id-field", "GMSFHM", "--revision-field", "GXSJ"])?.stderr).into_owned();
    assert!(!err.contains("--id-field") && !err.contains("--revision-field"), "{err}");
    std::fs::write(&f, "{\"revision\":1,\"payload\":{\"XM\":\"张三\"}}\n")?;
    let err = String::from_utf8_lossy(&ingest(&[])?.stderr).into_owned();
    assert!(err.contains("no source_id"), "{err}");
    Ok(())
}

/// `hutong access acls --apply` against a broker that keeps ACLs (the test kit's, spoken to by
/// librdkafka): the dry run changes nothing; the apply creates what the grants call for and
/// deletes the bindings of a consumer no grant covers any more, leaving every binding that is
/// not Hutong's; a second apply has nothing to do; once the grant has expired, its bindings go.
#[test]
fn access_acls_apply_reconciles_the_brokers_with_the_grants() -> anyhow::Result<()> {
    use hutong_tests::acl_broker::{AclBroker, StoredAcl};
    const ZHIHUI: &str = "User:zhihui.consumers.hutong.local";
    const ZONGZHI: &str = "User:zongzhi.consumers.hutong.local";
    // Codes of the Kafka protocol: topic 2, group 3; literal 3, prefixed 4; Read 3, Write 4,
    // Describe 8; Allow 3.
    let stored = |resource_type, name: &str, pattern_type, principal: &str, operation| StoredAcl {
        resource_type,
        name: name.into(),
        pattern_type,
        principal: principal.into(),
        host: "*".into(),
        operation,
        permission: 3,
    };
    let revoked = stored(2, "hutong.person.v2", 3, ZONGZHI, 3);
    let foreign =
        vec![stored(2, "hutong.", 4, "User:gateway.hutong.local", 4), stored(2, "other.team.events", 3, ZHIHUI, 3)];
    let broker = AclBroker::start([foreign.clone(), vec![revoked.clone()]].concat())?;

    let dir = tempfile::tempdir()?;
    let config = dir.path().join("hutong.toml");
    std::fs::write(
        &config,
        format!("[kafka]\nbootstrap-servers = \"{}\"\ntopic-prefix = \"hutong\"\n", broker.bootstrap),
    )?;
    let grants = dir.path().join("grants.json");
    let grant = |id: &str, consumer: &str, status: &str| {
        serde_json::json!({
            "id": id, "consumer": consumer, "resource": "gongan.household_registration", "provider": "gongan",
            "sharing": "conditional", "approver": "provider", "fields": [], "grids": [],
            "purpose": "为老服务", "scenario": "智慧社区平台", "until": "2026-12-31", "status": status,
            "requested_at": "2026-12-01T09:00:00+08:00", "due": "2026-12-10",
            "decided_by": "gongan", "decided_at": "2026-12-02T09:00:00+08:00", "reason": null
        })
    };
    std::fs::write(
        &grants,
        serde_json::to_string(&[grant("AR-1", "zhihui", "approved"), grant("AR-2", "zongzhi", "revoked")])?,
    )?;
    let args = |on: &'static str, extra: &'static [&'static str]| -> Vec<String> {
        let mut a: Vec<String> = ["access", "acls", "--grants"].map(String::from).into();
        a.push(grants.display().to_string());
        a.extend(["-c".into(), config.display().to_string(), "--policy".into(), "deploy/local/policy.toml".into()]);
        a.extend(["--on".into(), on.into(), "--apply".into()]);
        a.extend(extra.iter().map(|s| (*s).to_owned()));
        a
    };
    let run = |a: Vec<String>| -> anyhow::Result<Value> {
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        let out = hutong(&refs)?;
        anyhow::ensure!(out.status.success(), "hutong {}: {}", a.join(" "), String::from_utf8_lossy(&out.stderr));
        Ok(serde_json::from_slice(&out.stdout)?)
    };
    let count = |v: &Value, k: &str| v[k].as_array().map_or(0, Vec::len);
    // The plan itself: what the grants call for.
    let plan_args: Vec<String> = args("2026-12-05", &[]).into_iter().filter(|a| a != "--apply").collect();
    let plan = run(plan_args)?;
    let wanted = plan["acls"].as_array().unwrap().len();
    // 公安's register is shared on the person and household topics: Read and Describe on each,
    // and the platform's own consumer groups.
    assert_eq!(wanted, 5, "{plan}");

    let dry = run(args("2026-12-05", &["--dry-run"]))?;
    assert_eq!((dry["dry_run"].as_bool(), dry["found"].as_u64()), (Some(true), Some(3)), "{dry}");
    assert_eq!((count(&dry, "create"), count(&dry, "delete"), dry["foreign"].as_u64()), (wanted, 1, Some(2)), "{dry}");
    assert_eq!(dry["delete"][0]["principal"], ZONGZHI);
    assert_eq!(broker.acls().len(), 3, "a dry run changes nothing");

    let applied = run(args("2026-12-05", &[]))?;
    assert_eq!(applied["errors"], serde_json::json!([]), "{applied}");
    let held = broker.acls();
    assert_eq!(held.len(), 2 + wanted);
    assert!(!held.contains(&revoked), "the revoked grant's binding is gone");
    assert!(foreign.iter().all(|f| held.contains(f)), "bindings that are not Hutong's stay");
    assert!(held.contains(&stored(2, "hutong.person.v2", 3, ZHIHUI, 3)));
    assert!(held.contains(&stored(2, "hutong.person.v2", 3, ZHIHUI, 8)));
    assert!(held.contains(&stored(3, "zhihui.", 4, ZHIHUI, 3)));

    let again = run(args("2026-12-05", &[]))?;
    assert_eq!((count(&again, "create"), count(&again, "delete"), again["kept"].as_u64()), (0, 0, Some(wanted as u64)));

    // The grant expired: its bindings go, the others stay.
    let expired = run(args("2027-01-05", &[]))?;
    assert_eq!((count(&expired, "create"), count(&expired, "delete")), (0, wanted), "{expired}");
    assert_eq!(broker.acls(), {
        let mut f = foreign.clone();
        f.sort();
        f
    });
    let seen = broker.seen();
    use kafka_protocol::messages::ApiKey;
    assert!([ApiKey::DescribeAcls, ApiKey::CreateAcls, ApiKey::DeleteAcls].iter().all(|k| seen.contains(k)));

    // No broker there: the worker's own error, within the timeout, and nothing about tansu.
    std::fs::write(&config, format!("[kafka]\nbootstrap-servers = \"127.0.0.1:{}\"\n", hutong_tests::free_port()))?;
    let a = args("2026-12-05", &["--timeout", "1"]);
    let out = hutong(&a.iter().map(String::as_str).collect::<Vec<_>>())?;
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(said.contains("DescribeAcls") && !said.contains("tansu"), "{said}");
    Ok(())
}

/// A reader that stops early (`hutong validate … | head -1`) ends the command quietly, with the
/// status of a process ended by SIGPIPE, not a panic and its backtrace.
#[test]
fn validate_into_a_reader_that_stops_early_ends_quietly() -> anyhow::Result<()> {
    use std::io::{BufRead as _, BufReader};
    // Far more output than a pipe holds (64 KiB), so the writer cannot finish before the close.
    let sample =
        std::fs::read_to_string(repo_root().join("schemas/departments/gongan/samples/household_registration.ndjson"))?;
    let dir = tempfile::tempdir()?;
    let export = dir.path().join("large.ndjson");
    std::fs::write(&export, sample.repeat(50))?;
    let mut child = std::process::Command::new(hutong_tests::hutong_bin()?)
        .args(["validate", "-d", "gongan", "-k", "household_registration"])
        .arg(&export)
        .current_dir(repo_root())
        .env("HUTONG_PSEUDONYM_KEY", "cli-test-key-0123456789abcdef")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    // Read one line, then close the pipe: the 2,399 lines after it meet a closed stdout.
    let mut first = String::new();
    BufReader::new(child.stdout.take().expect("piped")).read_line(&mut first)?;
    assert!(first.contains("\"line\":1"), "{first:?}");
    let out = child.wait_with_output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(141), "{stderr}");
    Ok(())
}

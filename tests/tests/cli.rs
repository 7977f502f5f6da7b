//! The `hutong` binary's dry run and its errors, as a user runs them.

use std::process::Command;

use hutong_tests::{TEST_KEY, hutong_bin, repo_root};
use serde_json::Value;

fn hutong(args: &[&str]) -> anyhow::Result<std::process::Output> {
    Ok(Command::new(hutong_bin()?)
        .args(args)
        .current_dir(repo_root())
        .env("HUTONG_PSEUDONYM_KEY", TEST_KEY)
        .output()?)
}

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
    assert_eq!(lines.len(), 13);
    let rejected: Vec<&str> =
        lines.iter().filter(|l| l["status"] == "REJECTED").map(|l| l["source_id"].as_str().unwrap()).collect();
    assert_eq!(rejected, ["HJ2024900", "HJ2024901", "HJ2024902"]);
    let first = &lines[0]["records"][0];
    assert_eq!(first["entity"], "person");
    assert_eq!(first["topic"], "hutong.person.v1");
    assert_eq!(first["value"]["name"], "张伟");
    assert_eq!(first["key"], first["value"]["person_key"]);
    Ok(())
}

#[test]
fn validate_of_a_clean_file_exits_zero() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let f = dir.path().join("ok.ndjson");
    std::fs::write(&f, "{\"GMSFHM\":\"11010519491231002X\",\"XM\":\"张三\",\"XB\":\"1\"}\n")?;
    let out = hutong(&["validate", "-d", "gongan", "-k", "household_registration", f.to_str().unwrap()])?;
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
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

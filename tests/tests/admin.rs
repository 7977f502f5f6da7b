//! The admin gRPC service and the `hutong` CLI give the same answers:
//! dry-run validation, compatibility, the registry's subjects, the adapters.

use hutong_proto::v1::{
    CheckCompatibilityRequest, ListAdaptersRequest, ListSchemasRequest, ValidateRecordRequest,
    admin_client::AdminClient,
};
use hutong_tests::{Broker, Gateway, repo_root};
use serde_json::Value;

fn cli(args: &[&str]) -> anyhow::Result<(Option<i32>, String)> {
    let out = hutong_tests::hutong(args)?;
    Ok((out.status.code(), String::from_utf8(out.stdout)?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_rpcs_agree_with_the_cli() -> anyhow::Result<()> {
    let broker = Broker::start()?;
    let gateway = Gateway::start(&broker.bootstrap).await?;
    let channel = gateway.channel("governance").await?;
    let mut admin = AdminClient::new(channel);

    // ValidateRecord vs `hutong validate`, record by record.
    let sample = "schemas/departments/gongan/samples/household_registration.ndjson";
    let (code, stdout) = cli(&["validate", "-d", "gongan", "-k", "household_registration", sample])?;
    assert_eq!(code, Some(1));
    let cli_lines: Vec<Value> = stdout.lines().map(serde_json::from_str).collect::<Result<_, _>>()?;
    let records = hutong_tests::sample_records(sample)?;
    assert_eq!(cli_lines.len(), 48, "one line per sample row");
    assert_eq!(records.len(), cli_lines.len());
    let mut compared = 0;
    for ((rec, _), cli_line) in records.into_iter().zip(&cli_lines) {
        let rpc = admin
            .validate_record(ValidateRecordRequest { department: "gongan".into(), record: Some(rec) })
            .await?
            .into_inner();
        assert_eq!(rpc.valid, cli_line["status"] == "VALID", "{cli_line}");
        if rpc.valid {
            let cli_records = cli_line["records"].as_array().unwrap();
            assert_eq!(rpc.records.len(), cli_records.len());
            for (r, c) in rpc.records.iter().zip(cli_records) {
                assert_eq!(serde_json::from_str::<Value>(&r.json)?, c["value"]);
                assert_eq!(r.event_id, c["event_id"].as_str().unwrap());
                assert_eq!(r.key, c["key"].as_str().unwrap());
                assert_eq!(r.topic, c["topic"].as_str().unwrap());
            }
        } else {
            let cli_v: Vec<(String, String, String)> = cli_line["violations"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| {
                    (
                        x["pointer"].as_str().unwrap().into(),
                        x["rule"].as_str().unwrap().into(),
                        x["message"].as_str().unwrap().into(),
                    )
                })
                .collect();
            let rpc_v: Vec<(String, String, String)> =
                rpc.violations.iter().map(|x| (x.pointer.clone(), x.rule.clone(), x.message.clone())).collect();
            assert_eq!(rpc_v, cli_v);
        }
        compared += 1;
    }
    assert_eq!(compared, cli_lines.len());

    // CheckCompatibility vs `hutong schema check`, for a breaking and a compatible change.
    let (_, latest) = cli(&["schema", "show", "hutong.person.v2-value"])?;
    let person: Value = serde_json::from_str(&latest)?;
    let dir = tempfile::tempdir()?;
    let mut breaking = person.clone();
    breaking["properties"]["name"]["maxLength"] = 8.into();
    let mut widening = person.clone();
    widening["properties"]["nickname"] = serde_json::json!({"type": "string"});
    for (schema, expect_ok) in [(breaking, false), (widening, true)] {
        let f = dir.path().join("new.json");
        std::fs::write(&f, schema.to_string())?;
        let (code, out) = cli(&["schema", "check", "hutong.person.v2-value", f.to_str().unwrap()])?;
        let rpc = admin
            .check_compatibility(CheckCompatibilityRequest {
                subject: "hutong.person.v2-value".into(),
                schema_json: schema.to_string(),
                mode: String::new(),
            })
            .await?
            .into_inner();
        assert_eq!(rpc.compatible, expect_ok);
        assert_eq!(code, Some(if expect_ok { 0 } else { 1 }));
        assert_eq!(rpc.mode, "BACKWARD");
        let kinds: Vec<(&str, &str, bool)> =
            rpc.changes.iter().map(|c| (c.kind.as_str(), c.pointer.as_str(), c.compatible)).collect();
        let expected = if expect_ok {
            ("OPTIONAL_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL", "#/properties/nickname", true)
        } else {
            ("MAX_LENGTH_DECREASED", "#/properties/name/maxLength", false)
        };
        assert_eq!(kinds, [expected], "the one change, named");
        for c in &rpc.changes {
            assert!(out.contains(&format!("{} {}", c.kind, c.pointer)), "CLI lacks {} {}:\n{out}", c.kind, c.pointer);
        }
        assert_eq!(out.lines().count(), rpc.changes.len() + 1, "{out}");
    }

    // ListSchemas vs `hutong schema list --json`.
    let (_, out) = cli(&["schema", "list", "--json"])?;
    let cli_subjects: Vec<Value> = out.lines().map(serde_json::from_str).collect::<Result<_, _>>()?;
    let rpc = admin.list_schemas(ListSchemasRequest {}).await?.into_inner();
    assert!(rpc.subjects.len() >= 8, "a subject per entity: {:?}", rpc.subjects);
    assert_eq!(rpc.subjects.len(), cli_subjects.len());
    // One subject against the registry's own file.
    let registry: Value =
        serde_json::from_str(&std::fs::read_to_string(repo_root().join("schemas/registry/registry.json"))?)?;
    let person_versions = registry["subjects"]["hutong.person.v2-value"]["versions"].as_array().unwrap();
    let person = rpc.subjects.iter().find(|s| s.subject == "hutong.person.v2-value").expect("the person subject");
    assert_eq!(person.compatibility, "BACKWARD");
    assert_eq!(person.versions.len(), person_versions.len());
    assert_eq!(u64::from(person.latest_id), person_versions.last().unwrap()["id"].as_u64().unwrap());
    for (r, c) in rpc.subjects.iter().zip(&cli_subjects) {
        assert_eq!(r.subject, c["subject"].as_str().unwrap());
        assert_eq!(r.latest_id as u64, c["latest_id"].as_u64().unwrap());
        assert_eq!(r.compatibility, c["compatibility"].as_str().unwrap());
    }

    // ListAdapters vs `hutong adapter check`.
    let (code, out) = cli(&["adapter", "check"])?;
    assert_eq!(code, Some(0), "{out}");
    let rpc = admin.list_adapters(ListAdaptersRequest {}).await?.into_inner();
    assert_eq!(rpc.reload_generation, 1);
    assert!(rpc.reload_error.is_empty());
    assert!(rpc.adapters.len() >= 12, "the shipped adapters: {}", rpc.adapters.len());
    let gongan = rpc
        .adapters
        .iter()
        .find(|a| a.department == "gongan" && a.kind == "household_registration")
        .expect("the 公安 adapter");
    assert_eq!(gongan.title, "公安 户籍人口信息");
    assert_eq!(gongan.source_version, "2019");
    assert_eq!(gongan.entities, ["person", "household"]);
    assert!(gongan.path.ends_with("departments/gongan/household_registration.toml"), "{}", gongan.path);
    for a in &rpc.adapters {
        assert!(out.contains(&format!("ok    {}/{}", a.department, a.kind)), "{out}");
    }
    assert_eq!(out.lines().filter(|l| l.starts_with("ok ")).count(), rpc.adapters.len());
    Ok(())
}

//! The production deployment files, checked offline (no cluster, Docker or kustomize here):
//! `tests/python/check_manifests.py` validates every document under deploy/k8s against the
//! Kubernetes JSON schemas of a named release in strict mode (kubernetes-validate), the Strimzi
//! resources against the schemas transcribed from Strimzi's CRDs, the overlay's patches applied
//! to the base, deploy/compose.yaml against the Compose Specification's schema and the
//! Dockerfile's runtime stage; and the checked-in KafkaTopics are the production config's plan.

use std::path::Path;

use hutong_tests::{copy_dir, hutong, python, repo_root, run_python};

/// The checker on the deployment files under `root`: (success, exit code, stdout + stderr).
fn check(root: &Path) -> anyhow::Result<(bool, Option<i32>, String)> {
    let out = run_python("tests/python/check_manifests.py", &[&root.display().to_string()])?;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    Ok((out.status.success(), out.status.code(), text))
}

#[test]
fn the_deployment_files_are_valid_offline() -> anyhow::Result<()> {
    let (passed, _, text) = check(&repo_root())?;
    assert!(
        passed,
        "the deployment files are refused (needs PyYAML, jsonschema and kubernetes-validate for {}; \
         deploy/test.sh installs them):\n{text}",
        python()
    );
    for line in [
        "ok  deploy/k8s/base/gateway.yaml StatefulSet/hutong-gateway",
        "ok  deploy/k8s/base/gateway.yaml Service/hutong-gateway",
        "ok  deploy/k8s/base/gateway.yaml PodDisruptionBudget/hutong-gateway",
        "ok  deploy/k8s/base/gateway.yaml HorizontalPodAutoscaler/hutong-gateway",
        "ok  deploy/k8s/base/profiles.yaml StatefulSet/hutong-profiles",
        "ok  deploy/k8s/base/config.yaml ConfigMap/hutong-config",
        "ok  deploy/k8s/strimzi/topics.yaml KafkaTopic/hutong.person.v2",
        "ok  deploy/k8s/strimzi/service-users.yaml KafkaUser/hutong-gateway",
        "ok  deploy/k8s/overlays/city/patches/gateway.yaml StatefulSet/hutong-gateway (patched onto",
        "ok  deploy/compose.yaml Compose/hutong",
        "ok  deploy/Dockerfile Dockerfile/runtime (USER 10001:10001)",
    ] {
        assert!(text.lines().any(|l| l.starts_with(line)), "no line {line:?}:\n{text}");
    }
    assert!(text.contains(" 0 errors (Kubernetes 1.33.0 strict"), "{text}");
    Ok(())
}

/// The checker is not a rubber stamp: a copy of deploy/ with one field misspelt in the
/// gateway's StatefulSet, then a replica count that is no number, is refused, naming the file,
/// the resource and the field.
#[test]
fn a_broken_manifest_is_refused_and_named() -> anyhow::Result<()> {
    let repo = repo_root();
    let dir = tempfile::tempdir()?;
    copy_dir(&repo.join("deploy"), &dir.path().join("deploy"));
    // The Dockerfile's build context is the repository root: the rest of it, linked.
    for entry in std::fs::read_dir(&repo)? {
        let name = entry?.file_name();
        if !matches!(name.to_str(), Some("deploy" | "target" | ".git" | ".hutong")) {
            std::os::unix::fs::symlink(repo.join(&name), dir.path().join(&name))?;
        }
    }
    let (passed, _, text) = check(dir.path())?;
    assert!(passed, "the untouched copy passes:\n{text}");

    let gateway = dir.path().join("deploy/k8s/base/gateway.yaml");
    let original = std::fs::read_to_string(&gateway)?;
    let pull = "          imagePullPolicy: IfNotPresent\n";
    assert!(original.contains(pull));
    std::fs::write(&gateway, original.replacen(pull, &format!("{pull}          imagePullPolcy: Always\n"), 1))?;
    let (passed, code, text) = check(dir.path())?;
    assert!(!passed && code == Some(1), "an unknown field is refused:\n{text}");
    let refused = "ERROR deploy/k8s/base/gateway.yaml StatefulSet/hutong-gateway: spec.template.spec.containers.0: \
                   Additional properties are not allowed ('imagePullPolcy' was unexpected)";
    assert!(text.contains(refused), "{text}");

    std::fs::write(&gateway, &original)?;
    let profiles = dir.path().join("deploy/k8s/base/profiles.yaml");
    let text_before = std::fs::read_to_string(&profiles)?;
    assert!(text_before.contains("  replicas: 2\n"));
    std::fs::write(&profiles, text_before.replacen("  replicas: 2\n", "  replicas: \"two\"\n", 1))?;
    let (passed, code, text) = check(dir.path())?;
    assert!(!passed && code == Some(1), "a replica count that is no number is refused:\n{text}");
    assert!(
        text.contains(
            "ERROR deploy/k8s/base/profiles.yaml StatefulSet/hutong-profiles: spec.replicas: 'two' is not of type"
        ),
        "{text}"
    );
    assert!(!text.contains("ERROR deploy/k8s/base/gateway.yaml"), "the restored file passes again:\n{text}");
    Ok(())
}

/// deploy/k8s/strimzi/topics.yaml is `hutong topics plan --format strimzi` of the production
/// config, byte for byte, so a change of the standard or of the config cannot leave it stale.
#[test]
fn the_checked_in_kafka_topics_are_the_production_plan() -> anyhow::Result<()> {
    let args = [
        "topics",
        "plan",
        "-c",
        "deploy/production/hutong.toml",
        "--schemas",
        "schemas",
        "--format",
        "strimzi",
        "--cluster",
        "hutong",
        "--namespace",
        "hutong",
    ];
    let out = hutong(&args)?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let generated = String::from_utf8(out.stdout)?;
    let checked_in = std::fs::read_to_string(repo_root().join("deploy/k8s/strimzi/topics.yaml"))?;
    assert!(
        generated == checked_in,
        "deploy/k8s/strimzi/topics.yaml is stale; regenerate it:\n  hutong {} > deploy/k8s/strimzi/topics.yaml",
        args.join(" ")
    );
    assert!(generated.contains("name: \"hutong.person.v2\"") && generated.contains("replicas: 3"));
    Ok(())
}

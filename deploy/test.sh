#!/usr/bin/env bash
# README command 2: the whole test suite. Installs what is missing (C
# toolchain, the tansu broker the end-to-end tests start), checks formatting,
# builds once, runs clippy (warnings are errors), runs every test. Tests that
# need the broker fail, never skip, without it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source deploy/prereqs.sh

deploy/broker.sh install
export TANSU_BIN="${CARGO_HOME:-$HOME/.cargo}/bin/tansu"

# Independent checkers in Python: a Confluent client (confluent-kafka) for the schema registry
# and the consuming guide's example, PyYAML + jsonschema for the Strimzi resources,
# kubernetes-validate (Kubernetes' JSON schemas, bundled) for deploy/k8s and deploy/compose.yaml
# (tests/python/check_manifests.py), grpcio for the Python department client of examples/python
# (its requirements.txt pins the same), Playwright's client for the console's browser tests (it
# drives Debian's chromium below; no browser is downloaded).
VENV="$ROOT/.hutong/venv"
PY_PACKAGES=("confluent-kafka[schemaregistry]==2.16.1" "PyYAML==6.0.3" "jsonschema==4.25.1"
  "grpcio==1.85.4" "grpcio-tools==1.85.4" "protobuf==7.36.2" "kubernetes-validate==1.37.0"
  "playwright==1.65.2")
if ! "$VENV/bin/python" -c 'import confluent_kafka.schema_registry, yaml, jsonschema, grpc, grpc_tools, kubernetes_validate, playwright.sync_api' >/dev/null 2>&1; then
  echo "[test] installing ${PY_PACKAGES[*]} into .hutong/venv" >&2
  mkdir -p "$ROOT/.hutong"
  [ -x "$VENV/bin/pip" ] || python3 -m venv "$VENV" || { apt-get install -y -qq python3-venv && python3 -m venv "$VENV"; }
  "$VENV/bin/pip" install -q "${PY_PACKAGES[@]}"
fi
export HUTONG_PYTHON="$VENV/bin/python"

# PostgreSQL for the profile store's tests: each test starts a throw-away cluster of its own
# (initdb on a free port as the postgres user) and stops it. Debian's package when missing.
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  echo "[test] installing PostgreSQL (Debian package)" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null
fi
HUTONG_PG_BIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
export HUTONG_PG_BIN

# Chromium for the effectiveness report's browser test (headless, Debian's package) and a CJK
# font so Chinese renders as text, not boxes.
if ! command -v chromium >/dev/null 2>&1 || ! fc-list 2>/dev/null | grep -qi "wenquanyi\|wqy"; then
  echo "[test] installing chromium and fonts-wqy-zenhei (Debian packages)" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium fonts-wqy-zenhei >/dev/null
fi

echo "[test] formatting (cargo fmt --check)" >&2
cargo fmt --all -- --check

echo "[test] building the workspace once (binaries and tests)" >&2
cargo build --workspace --all-targets --locked

echo "[test] lints (cargo clippy, warnings are errors; and the CLI without the gateway)" >&2
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo clippy -p hutong-cli --no-default-features --locked -- -D warnings
export HUTONG_BIN="$ROOT/target/debug/hutong"

if command -v cargo-nextest >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast
fi

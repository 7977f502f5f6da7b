#!/usr/bin/env bash
# README command 2: the whole test suite. Installs what is missing (C
# toolchain, the tansu broker the end-to-end tests start), builds once, runs
# every test. Tests that need the broker fail, never skip, without it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source deploy/prereqs.sh

deploy/broker.sh install
export TANSU_BIN="${CARGO_HOME:-$HOME/.cargo}/bin/tansu"

echo "[test] building the workspace once (binaries and tests)" >&2
cargo build --workspace --all-targets --locked
export HUTONG_BIN="$ROOT/target/debug/hutong"

if command -v cargo-nextest >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast
fi

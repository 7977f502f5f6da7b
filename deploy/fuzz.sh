#!/usr/bin/env bash
# Fuzz the gateway for a bounded time (default 60 s per target):
#   payload_pipeline  any payload bytes, any charset, every adapter → adapter → standard
#   proto_decode      any bytes as a SubmitRequest on the wire → the pipeline
# Uses cargo-fuzz (libFuzzer) without a sanitizer, so the stable toolchain does.
# Crashes land in tests/fuzz/artifacts/<target>/.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SECONDS_PER_TARGET="${1:-60}"
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked --version 0.13.2
for target in payload_pipeline proto_decode; do
  echo "[fuzz] $target for ${SECONDS_PER_TARGET}s" >&2
  cargo fuzz run --fuzz-dir tests/fuzz "$target" -s none -- -max_total_time="$SECONDS_PER_TARGET" 2>&1 | tail -n 3
done

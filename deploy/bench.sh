#!/usr/bin/env bash
# The benchmark of docs/benchmarks.md: a release build, tansu with memory
# storage on 127.0.0.1:19092, the gateway, then `hutong bench` (gateway vs raw
# producer in the same run), streamed and unary, over mTLS with the audit on
# (as deployed). Arguments go to every
# `hutong bench` run (e.g. --records 50000, or --mix default for every shipped
# department in its share, each on its own certificate from the same PKI).
# HUTONG_BIN=path uses that binary
# instead of building one (to compare two builds in the same session).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source deploy/prereqs.sh
deploy/broker.sh install
if [ -n "${HUTONG_BIN:-}" ]; then
  HUTONG="$HUTONG_BIN"
else
  cargo build --release -p hutong-cli
  HUTONG="$ROOT/target/release/hutong"
fi
WORK="$(mktemp -d)"
trap 'kill $GW $BROKER 2>/dev/null || true; wait $GW $BROKER 2>/dev/null || true; rm -rf "$WORK"' EXIT
( cd "$WORK" && exec "${CARGO_HOME:-$HOME/.cargo}/bin/tansu" broker --listener-url tcp://127.0.0.1:19092 \
    --advertised-listener-url tcp://127.0.0.1:19092 --storage-engine memory://tansu/ >"$WORK/broker.log" 2>&1 ) &
BROKER=$!
cat >"$WORK/hutong.toml" <<TOML
listen = "127.0.0.1:19051"
schemas-dir = "$ROOT/schemas"
[kafka]
bootstrap-servers = "127.0.0.1:19092"
[registry]
listen = "127.0.0.1:19081"
public-url = "http://127.0.0.1:19081"
TOML
"$HUTONG" certs init --out "$WORK/pki" --policy deploy/local/policy.toml 2>/dev/null
cat >>"$WORK/hutong.toml" <<TOML
[auth]
policy-file = "$ROOT/deploy/local/policy.toml"
ca-file = "$WORK/pki/ca.pem"
cert-file = "$WORK/pki/server.pem"
key-file = "$WORK/pki/server.key"
[audit]
dir = "$WORK/audit"
TOML
export HUTONG_PKI="$WORK/pki" HUTONG_AS=gongan
for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/19092) 2>/dev/null && break; sleep 0.1; done
export HUTONG_PSEUDONYM_KEY="bench-key-0123456789abcdef"
HUTONG_LOG=warn "$HUTONG" serve --config "$WORK/hutong.toml" >"$WORK/gateway.log" 2>&1 &
GW=$!
"$HUTONG" health --addr https://127.0.0.1:19051 --wait 60 >/dev/null
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -r)"
MODES="${BENCH_MODES:-stream unary}"
for mode in $MODES; do
  "$HUTONG" bench --addr https://127.0.0.1:19051 --config "$WORK/hutong.toml" --mode "$mode" --gateway-pid "$GW" "$@"
done

#!/usr/bin/env bash
# The local Kafka-protocol broker: tansu (https://github.com/tansu-io/tansu),
# installed from crates.io at a pinned version, run on 127.0.0.1 with SQLite
# storage under .hutong/ (git-ignored).
#
#   deploy/broker.sh install          install tansu if missing (8-11 min on 2 cores)
#   deploy/broker.sh start [--fresh]  start it in the background (--fresh: empty storage)
#   deploy/broker.sh stop             stop it
#   deploy/broker.sh status           is it listening?
set -euo pipefail

TANSU_VERSION="${TANSU_VERSION:-0.6.0}"
PORT="${HUTONG_BROKER_PORT:-9092}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="$ROOT/.hutong"
CARGO_BIN="${CARGO_HOME:-$HOME/.cargo}/bin"
TANSU="$CARGO_BIN/tansu"

log() { printf '\033[1;34m[broker]\033[0m %s\n' "$*" >&2; }

installed_version() {
  [ -x "$TANSU" ] || return 1
  "$TANSU" --version 2>/dev/null | grep -oE '[0-9]+\.[0-9]+\.[0-9]+' | head -n1
}

install() {
  if [ "$(installed_version || true)" = "$TANSU_VERSION" ]; then
    log "tansu $TANSU_VERSION already installed at $TANSU"
    return
  fi
  log "installing tansu $TANSU_VERSION from crates.io (takes 8-11 minutes on 2 cores)"
  cargo install tansu --version "$TANSU_VERSION" --locked --features dynostore,libsql
}

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }

start() {
  install
  mkdir -p "$STATE"
  if listening; then
    log "a broker already listens on 127.0.0.1:$PORT"
    return
  fi
  if [ "${1:-}" = "--fresh" ]; then rm -f "$STATE"/broker.db*; fi
  log "starting tansu on 127.0.0.1:$PORT (storage: .hutong/broker.db, log: .hutong/broker.log)"
  (cd "$STATE" || exit 1
    nohup "$TANSU" broker \
      --listener-url "tcp://127.0.0.1:$PORT" \
      --advertised-listener-url "tcp://127.0.0.1:$PORT" \
      --storage-engine "sqlite://broker.db" >broker.log 2>&1 &
    echo $! >broker.pid)
  for _ in $(seq 1 100); do
    if listening; then log "broker ready"; return; fi
    if ! kill -0 "$(cat "$STATE/broker.pid")" 2>/dev/null; then
      log "tansu exited; its log:"; cat "$STATE/broker.log" >&2; exit 1
    fi
    sleep 0.2
  done
  log "tansu did not listen within 20 s; its log:"; cat "$STATE/broker.log" >&2; exit 1
}

stop() {
  if [ -f "$STATE/broker.pid" ] && kill "$(cat "$STATE/broker.pid")" 2>/dev/null; then
    log "broker stopped"
  elif pkill -f "tansu broker --listener-url tcp://127.0.0.1:$PORT " 2>/dev/null; then
    log "broker stopped (no pid file; matched by its command line)"
  fi
  rm -f "$STATE/broker.pid"
  for _ in $(seq 1 50); do listening || break; sleep 0.1; done
}

case "${1:-}" in
  install) install ;;
  start) shift; start "$@" ;;
  stop) stop ;;
  status) if listening; then echo "listening on 127.0.0.1:$PORT"; else echo "not running"; exit 1; fi ;;
  *) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac

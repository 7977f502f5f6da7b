#!/usr/bin/env bash
# README command 1: the main job, end to end on this machine.
# Installs what is missing, starts the local broker (tansu) and the gateway,
# submits every department's sample export (valid and invalid rows), shows
# the published records and the rejects with reasons, runs the profile service
# (一人一档) and shows one resident merged from four departments with her
# household, building and grid, the sharing rules (the catalogue, a request
# approved by its owner and used, one refused, an objection closed by the
# corrected record), the governance consumers (one matter's thread
# across departments, deadlines, alerts, matches, the month's report), and
# checks every topic against its declaration with its message count (none may
# be empty), and ends with the admin console's address (管理控制台, in a browser).
set -euo pipefail
# Run from a terminal, it ends with the console running until Ctrl-C; --keep does so anywhere,
# --no-keep never.
KEEP=0; [ -t 0 ] && [ -t 1 ] && KEEP=1
for arg in "$@"; do
  case "$arg" in
    --keep) KEEP=1 ;;
    --no-keep) KEEP=0 ;;
    -h|--help) echo "usage: deploy/demo.sh [--keep|--no-keep]"; exit 0 ;;
    *) echo "unknown argument $arg (usage: deploy/demo.sh [--keep|--no-keep])" >&2; exit 2 ;;
  esac
done
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source deploy/prereqs.sh

step() { printf '\n\033[1;32m==> %s\033[0m\n' "$*"; }
STATE=.hutong
mkdir -p "$STATE"

step "building hutong"
cargo build -p hutong-cli
HUTONG="$ROOT/target/debug/hutong"

step "starting the local broker (fresh storage)"
deploy/broker.sh stop >/dev/null 2>&1 || true
deploy/broker.sh start --fresh

if [ ! -s "$STATE/pseudonym.key" ]; then
  head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$STATE/pseudonym.key"
  chmod 600 "$STATE/pseudonym.key"
fi

step "development PKI (.hutong/pki): a CA, the gateway's certificate, one client certificate per department"
"$HUTONG" certs init --out "$STATE/pki" --policy deploy/local/policy.toml
export HUTONG_PKI="$STATE/pki"

step "starting the gateway: mTLS on 127.0.0.1:50051 (log: .hutong/gateway.log)"
"$HUTONG" serve --config deploy/local/hutong.toml >"$STATE/gateway.log" 2>&1 &
GATEWAY=$!
trap 'kill $GATEWAY 2>/dev/null || true; wait $GATEWAY 2>/dev/null || true; deploy/broker.sh stop >/dev/null 2>&1 || true' EXIT
"$HUTONG" health --wait 60 || { cat "$STATE/gateway.log"; exit 1; }

SAMPLE=schemas/departments/gongan/samples/household_registration.ndjson
step "公安 submits its household-registration export: $SAMPLE"
"$HUTONG" ingest --as gongan --kind household_registration "$SAMPLE"

step "the nine other departments submit theirs (民政 卫健 人社 司法 信访 12345 网格 市场监管 住建)"
for f in schemas/departments/*/samples/*.ndjson; do
  dept=$(basename "$(dirname "$(dirname "$f")")"); kind=$(basename "$f" .ndjson)
  [ "$dept" = gongan ] && continue
  "$HUTONG" ingest --quiet --as "$dept" --kind "$kind" "$f"
done

step "deny by default: 公安's certificate submitting 民政's kind is refused (and audited)"
"$HUTONG" ingest --as gongan --kind social_assistance schemas/departments/minzheng/samples/social_assistance.ndjson \
  && { echo "expected PERMISSION_DENIED"; exit 1; } || true

step "published on hutong.person.v2 (as any Kafka consumer sees them; first 3)"
"$HUTONG" tail hutong.person.v2 --from-beginning --max 3 --idle-timeout 5

step "a governance event on hutong.event.v2 (矛盾纠纷, 信访, 12345, 网格 patrols; first 2)"
"$HUTONG" tail hutong.event.v2 --from-beginning --max 2 --idle-timeout 5

step "rejected, on hutong.dlq.v1 with the original payload and the reasons (first 3)"
"$HUTONG" tail hutong.dlq.v1 --from-beginning --max 3 --idle-timeout 5

step "the dead letters counted by department, kind and rule; after an adapter fix, 'hutong dlq replay' sends them again (dry run here)"
"$HUTONG" dlq list --config deploy/local/hutong.toml
"$HUTONG" dlq replay --config deploy/local/hutong.toml --department gongan --rule adapter:code --dry-run

step "one department's fact about one entity: the key of a household member's fact on hutong.household.v2"
"$HUTONG" tail hutong.household.v2 --from-beginning --max 1 --idle-timeout 5 --json | cut -c1-400; echo

step "一人一档: the profile service merges every department's facts (log: .hutong/profiles.log, store: .hutong/profiles.db)"
rm -f "$STATE"/profiles.db "$STATE"/profiles.db-wal "$STATE"/profiles.db-shm
"$HUTONG" profiles serve --config deploy/local/hutong.toml >"$STATE/profiles.log" 2>&1 &
PROFILES=$!
trap 'kill $PROFILES $GATEWAY 2>/dev/null || true; wait $PROFILES $GATEWAY 2>/dev/null || true; deploy/broker.sh stop >/dev/null 2>&1 || true' EXIT
"$HUTONG" health --addr https://127.0.0.1:50061 --service hutong.v1.Profiles --wait 60 || { cat "$STATE/profiles.log"; exit 1; }
export HUTONG_PROFILES_ADDR=https://127.0.0.1:50061
# 胡金凤 is known to 公安, 民政, 卫健 and 人社: wait until all four departments' facts are merged,
# and her household and building (other topics, which the service may reach a moment later).
RESIDENT=330106194803080242
BUILDING=zhujian:LD330106004053-05
for _ in $(seq 1 120); do
  answer=$(HUTONG_CITIZEN_ID=$RESIDENT "$HUTONG" profile person --as minzheng --json 2>/dev/null || true)
  HOUSEHOLD=$(echo "$answer" | grep -o '"household_key": "[^"]*"' | head -1 | cut -d'"' -f4 || true)
  if echo "$answer" | grep -q '"gongan"' && echo "$answer" | grep -q '"renshe"' && echo "$answer" | grep -q '"weijian"' \
     && echo "$answer" | grep -q '"minzheng"' && [ -n "$HOUSEHOLD" ] \
     && "$HUTONG" profile household "$HOUSEHOLD" --as minzheng >/dev/null 2>&1 \
     && "$HUTONG" profile building "$BUILDING" --as minzheng >/dev/null 2>&1; then break; fi
  sleep 0.5
done

step "one resident's profile, as 民政 sees it: every field with its source, a conflict (公安's 不予共享 citizen ID withheld)"
HUTONG_CITIZEN_ID=$RESIDENT "$HUTONG" profile person --as minzheng

step "her household (户) with its members and their relation to the head (与户主关系)"
"$HUTONG" profile household "$HOUSEHOLD" --as minzheng

step "her building (楼栋) with its residents and rooms (人房关联)"
"$HUTONG" profile building "$BUILDING" --as minzheng

step "her grid (网格 330106004053001): everyone living there, directly or through a building or household"
"$HUTONG" profile grid 330106004053001 --as wangge --people 8

step "where departments disagree, per department whose value lost"
"$HUTONG" profile conflicts --as gongan --limit 5

step "共享目录: the resource catalogue, generated from the adapters, the standard and the topics (also GET http://127.0.0.1:8081/catalog; docs/catalog.md)"
"$HUTONG" catalog list --config deploy/local/hutong.toml

step "申请审批: the community platform (consumer zhihui) has no grant yet: refused, and audited"
HUTONG_CITIZEN_ID=$RESIDENT "$HUTONG" profile person --as zhihui || true
UNTIL=$(TZ=Asia/Shanghai date -d '+90 days' +%F)
json_field() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }

step "zhihui asks 公安 for residents' name, sex and household (有条件共享: 公安 decides, within 10 working days)"
AR1=$("$HUTONG" access request --as zhihui --resource gongan.household_registration \
  --field person.name --field person.sex --field person.household_key \
  --purpose "为老服务上门探访名单" --scenario "智慧社区平台 网格员端" --until "$UNTIL" --json | json_field '["id"]')
"$HUTONG" access list --as gongan --pending

step "民政 may not decide on 公安's resource (refused, audited); 公安 approves"
"$HUTONG" access approve "$AR1" --as minzheng || true
"$HUTONG" access approve "$AR1" --as gongan --reason "用途明确，字段最小"

step "zhihui now sees what was granted and nothing else: 公安's name, sex and household; every other field withheld"
HUTONG_CITIZEN_ID=$RESIDENT "$HUTONG" profile person --as zhihui

step "one request refused: zhihui asks 卫健 for elderly health records; 卫健 denies, with its reason"
AR2=$("$HUTONG" access request --as zhihui --resource weijian.elderly_health \
  --purpose "为老服务上门探访名单" --scenario "智慧社区平台 网格员端" --until "$UNTIL" --json | json_field '["id"]')
"$HUTONG" access deny "$AR2" --as weijian --reason "健康档案仅用于医疗卫生服务，不向社区平台开放"
"$HUTONG" access catalog --as zhihui

step "usage per consumer and resource, and the Kafka READ ACLs the grants call for (--format strimzi: KafkaUser resources)"
"$HUTONG" access usage --as governance
"$HUTONG" access acls --as governance --config deploy/local/hutong.toml --format kafka-acls
# Reconciling the brokers' ACLs: a dry run here (tansu keeps no ACLs; --apply on a Kafka cluster).
"$HUTONG" access acls --as governance --config deploy/local/hutong.toml --apply --dry-run > /dev/null

step "数据异议: 公安 objects to 民政's birth date of 胡金凤 (the Excel 1900 slip); it is in 民政's queue and marks her profile"
CE_ID=$(echo "$answer" | python3 -c 'import json,sys; print(next(c["loser"]["source"]["ce_id"] for c in json.load(sys.stdin)["profile"]["conflicts"] if c["field"] == "birth_date"))')
OB=$("$HUTONG" objection file --as gongan --ce-id "$CE_ID" --pointer /birth_date --reason "户籍登记出生日期为1948-03-08" --json | json_field '["id"]')
"$HUTONG" objection list --as minzheng --mine
HUTONG_CITIZEN_ID=$RESIDENT "$HUTONG" profile person --as minzheng --json | python3 -c 'import json,sys; print("marked 异议:", json.dumps(json.load(sys.stdin)["profile"].get("objections"), ensure_ascii=False))'

step "民政 sends the corrected record (revision 2 of the same record): the objection closes by itself"
"$HUTONG" ingest --as minzheng --kind elderly_care deploy/local/corrections/minzheng/elderly_care.ndjson
for _ in $(seq 1 120); do
  "$HUTONG" objection list --as minzheng --all --json | grep -q '"status": "closed"' && break
  sleep 0.5
done
"$HUTONG" objection list --as minzheng --all

# The governance consumers read the same topics: wait until the three departments' records of
# one matter (网格 → 司法 → 信访) are all in.
for _ in $(seq 1 120); do
  thread=$("$HUTONG" thread sifa:XX2026-0101 --as wangge --json 2>/dev/null || true)
  if echo "$thread" | grep -q '"wangge:WG330106004053-20261103-0011"' && echo "$thread" | grep -q '"xinfang:XF330106-2026-000412"'; then break; fi
  sleep 0.5
done

step "交办反馈: one matter across three departments (网格 report 移交 司法 mediation, then a 信访 petition), one timeline"
"$HUTONG" thread sifa:XX2026-0101 --as wangge

step "open events of grid 330106004053001 with their age and deadline in working days (official calendar, schemas/calendar/cn)"
"$HUTONG" events --grid 330106004053001 --as wangge --limit 12

step "督查督办: the alerts raised on the samples (提醒 → 预警 → 督办: overdue, returned twice, reopened, four events at one address)"
"$HUTONG" alerts --grid 330106004053001 --as wangge --limit 12

step "供需对接: residents' needs with the resources proposed (by category, area, target group, places left)"
"$HUTONG" matches --as minzheng

step "成效评估: the report of November 2026 (per department and per grid, every indicator defined)"
"$HUTONG" report --period 2026-11 --as wangge --out "$STATE/report-2026-11.html"
"$HUTONG" report --period 2026-11 --as wangge --format csv --out "$STATE/report-2026-11.csv"
THIS_MONTH=$(TZ=Asia/Shanghai date +%Y-%m)
"$HUTONG" report --period "$THIS_MONTH" --as wangge --out "$STATE/report-$THIS_MONTH.html"
echo "open $ROOT/$STATE/report-2026-11.html in a browser (charts and tables, no network needed);"
echo "report-$THIS_MONTH.html counts what each department published today (the samples), report-2026-11 how November's events and needs were handled"
step "the same indicators as Prometheus metrics of the service (http://127.0.0.1:9465/metrics; first lines)"
curl -s http://127.0.0.1:9465/metrics | grep -E '^hutong_governance_(events_reported|open_needs_without_resource)' | head -8 || true

step "every topic against its declaration (compacted entity and profile topics, DLQ and audit with retention), with its messages"
"$HUTONG" topics check --config deploy/local/hutong.toml --counts --require-messages

step "the audit trail: every submission and refusal, hash-chained (.hutong/audit)"
tail -n 1 "$STATE"/audit/audit-*.jsonl | cut -c1-300; echo
"$HUTONG" audit verify "$STATE/audit"

step "the schema registry (Confluent-compatible REST) serves the standard behind every topic"
curl -s http://127.0.0.1:8081/subjects; echo

step "管理控制台: the admin console, in a browser, on the consumer service's port (docs/console.md)"
CONSOLE=https://127.0.0.1:50061/console
"$HUTONG" health --addr https://127.0.0.1:50061 --service hutong.v1.Profiles >/dev/null
curl -s -o /dev/null -w "GET /console with 大数据局's certificate (admin governance): HTTP %{http_code}\n" \
  --cacert "$STATE/pki/ca.pem" --cert "$STATE/pki/governance.pem" --key "$STATE/pki/governance.key" "$CONSOLE"
echo "console: $CONSOLE"
echo "  import $ROOT/$STATE/pki/governance.p12 (password: hutong) into the browser as your certificate,"
echo "  or a department's (gongan.p12, minzheng.p12 …) to see what that department sees;"
echo "  trust $ROOT/$STATE/pki/ca.pem as a certificate authority for websites."

if [ "$KEEP" = 1 ]; then
  step "running until Ctrl-C: the console at $CONSOLE, the gateway at https://127.0.0.1:50051, the broker at 127.0.0.1:9092"
  wait $PROFILES
else
  step "done: the profile service, the gateway and the broker stop now (deploy/demo.sh --keep, or a terminal, keeps them running)"
fi

#!/usr/bin/env bash
# Contended bids on one hot item, measured in one run on this machine next to
# the two ceilings that give the numbers meaning:
#   1. redis-benchmark's EVALSHA rate for a one-key Lua compare-and-set, the
#      most a single Redis can decide per second;
#   2. plain hello handlers on net/http and on fasthttp (the gateway's HTTP
#      server), driven by the same load generator: the most a Go HTTP service
#      on either server can answer here;
# then the API gateway for each REDIS_STRATEGY (lua, optimistic), with and
# without its local pre-filter (and once without coalescing either: the simple
# gateway), against a private Redis and NATS (JetStream).
# Prints a markdown table and keeps it, with every raw report, in
# load-tests/results/contended-<time>/ (not committed).
#
# The EVALSHA benchmark runs at the start and at the end; the table uses the
# higher rate (other work on a shared machine only ever lowers a ceiling).
#
# Usage: bench/contended.sh [--redis-only]
#
# Everything listens on free loopback ports and is stopped on exit. Tunables
# (environment):
#   DURATION=10s          each load generator run
#   CONCURRENCY=64        load generator workers (one request in flight each)
#   USERS=1000            distinct bidders
#   MODES="climb flood"   loadgen bid modes to run against the gateway
#                         (one of them for a shorter run)
#   CONFIGS="lua:true lua:false lua:false:false optimistic:true optimistic:false"
#                         gateway strategy:pre-filter[:coalescing] (coalescing
#                         defaults to true); empty runs only the two ceilings
#   MAX_SHARES="0 0.5"    for each configuration and mode, one run per share of
#                         bids sent as maximum bids (max_amount): plain bids
#                         only, then half maxima, next to each other
#   PREFILTER_ENV=PREFILTER   COALESCE_ENV=COALESCE   the gateway's switches
#   APPENDFSYNC=always    Redis's append-only file: fsync before every answer
#                         (always, as the platform runs), once a second
#                         (everysec), or no file at all (none); the ceiling
#                         and the gateway share that Redis
#   EVALSHA_REQUESTS=200000   EVALSHA_CLIENTS=50
#   RESULTS_DIR=load-tests/results/contended-<time>   where the table goes
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
lt=$(dirname "$here")
root=$(dirname "$lt")

redis_only=false
case "${1:-}" in
  --redis-only) redis_only=true ;;
  "") ;;
  *) echo "usage: $0 [--redis-only]" >&2; exit 2 ;;
esac

DURATION=${DURATION:-10s}
CONCURRENCY=${CONCURRENCY:-64}
USERS=${USERS:-1000}
MODES=${MODES:-climb flood}
CONFIGS=${CONFIGS-lua:true lua:false lua:false:false optimistic:true optimistic:false}
PREFILTER_ENV=${PREFILTER_ENV:-PREFILTER}
COALESCE_ENV=${COALESCE_ENV:-COALESCE}
APPENDFSYNC=${APPENDFSYNC:-always}
MAX_SHARES=${MAX_SHARES:-0 0.5}
EVALSHA_REQUESTS=${EVALSHA_REQUESTS:-200000}
EVALSHA_CLIENTS=${EVALSHA_CLIENTS:-50}

die() { echo "contended: $*" >&2; exit 1; }
for bin in redis-server redis-cli redis-benchmark curl /usr/bin/python3; do
  command -v "$bin" >/dev/null 2>&1 || die "$bin is missing (scripts/install-deps.sh installs it)"
done
if ! $redis_only; then
  command -v nats-server >/dev/null 2>&1 || die "nats-server is missing (scripts/install-deps.sh installs it)"
  command -v go >/dev/null 2>&1 || die "go is missing"
  [ -z "$CONFIGS" ] || [ -f "$root/api-gateway/cmd/main.go" ] ||
    die "api-gateway/cmd/main.go does not exist yet: the gateway part cannot run (use --redis-only for the Redis ceiling alone)"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/contended.XXXXXX")
pids=()
cleanup() {
  for ((i=${#pids[@]}-1; i>=0; i--)); do stop_pid "${pids[$i]}"; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# stop_pid PID: TERM, wait up to 10 s, then KILL.
stop_pid() {
  local pid=$1
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# Ports come from below the kernel's ephemeral range, where no outgoing
# connection can be holding the one we pick.
ephemeral_low=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
free_port() {
  local p
  for _ in $(seq 1 100); do
    p=$((10000 + RANDOM % (ephemeral_low - 10000)))
    port_busy "$p" || { echo "$p"; return; }
  done
  die "no free port found"
}

# wait_until SECONDS WHAT CMD...: polls CMD every 0.1 s until it succeeds.
wait_until() {
  local secs=$1 what=$2; shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then
      echo "contended: $what not ready after ${secs}s" >&2
      return 1
    fi
    sleep 0.1
  done
}

stamp=$(date -u +%Y%m%dT%H%M%SZ)
results=${RESULTS_DIR:-"$lt/results/contended-$stamp"}
mkdir -p "$results"
rows="$work/rows.tsv" # label, mode, json report path

# --- 1. Redis ceiling -------------------------------------------------------
rport=$(free_port)
case "$APPENDFSYNC" in
  none) persistence=(--appendonly no) ;;
  always | everysec) persistence=(--appendonly yes --appendfsync "$APPENDFSYNC") ;;
  *) die "APPENDFSYNC=$APPENDFSYNC: want always, everysec or none" ;;
esac
redis-server --port "$rport" --bind 127.0.0.1 --save "" "${persistence[@]}" \
  --dir "$work" --loglevel warning --protected-mode no >"$work/redis.log" 2>&1 &
pids+=($!)
wait_until 10 redis redis-cli -p "$rport" ping || exit 1

lua="local c=tonumber(redis.call('GET',KEYS[1]) or '0'); local a=tonumber(ARGV[1]); if a>c then redis.call('SET',KEYS[1],ARGV[1]) return 1 end return 0"
sha=$(redis-cli -p "$rport" SCRIPT LOAD "$lua")
# evalsha N: one benchmark run into evalsha-N.csv. It runs at the start and
# again at the end: other work on the machine can only lower a ceiling, so
# the table uses the higher of the two and shows both.
evalsha() {
  echo "EVALSHA: redis-benchmark -n $EVALSHA_REQUESTS -c $EVALSHA_CLIENTS -P 1 -r 1000000 EVALSHA $sha 1 k __rand_int__" >&2
  redis-cli -p "$rport" DEL k >/dev/null
  redis-benchmark -p "$rport" -n "$EVALSHA_REQUESTS" -c "$EVALSHA_CLIENTS" -P 1 -r 1000000 --csv \
    EVALSHA "$sha" 1 k __rand_int__ >"$work/evalsha-$1.csv"
  # The script keeps the highest amount: proof the benchmark ran it.
  [ -n "$(redis-cli -p "$rport" GET k)" ] || die "EVALSHA benchmark left no value: the script did not run"
  redis-cli -p "$rport" DEL k >/dev/null
}
evalsha 1

# --- 2. Baseline and gateway -------------------------------------------------
if ! $redis_only; then
  echo "building loadgen, hello and api-gateway" >&2
  (cd "$lt" && go build -o "$work/loadgen" ./cmd/loadgen && go build -o "$work/hello" ./cmd/hello)
  if [ -n "$CONFIGS" ]; then
    (cd "$root/api-gateway" && go build -o "$work/api-gateway" ./cmd)
  fi

  # loadgen LABEL MODE URL ITEM: one run, its JSON report in $work.
  loadgen() {
    local label=$1 mode=$2 url=$3 item=$4; shift 4
    local out="$work/report-$(echo "$label-$mode" | tr -c 'A-Za-z0-9_-' _).json"
    echo "run: $label ($mode)" >&2
    "$work/loadgen" -url "$url" -item "$item" -users "$USERS" -concurrency "$CONCURRENCY" \
      -duration "$DURATION" -bid-mode "$mode" -strategy-label "$label" -json "$@" >"$out" ||
      die "loadgen $label failed: $(cat "$out")"
    printf '%s\t%s\t%s\n' "$label" "$mode" "$out" >>"$rows"
  }

  for server in net/http fasthttp; do
    hport=$(free_port)
    "$work/hello" -addr "127.0.0.1:$hport" -server "$server" 2>"$work/hello.log" &
    hpid=$!
    pids+=($hpid)
    wait_until 10 "$server hello" curl -sf "http://127.0.0.1:$hport/health" || exit 1
    # hello accepts everything, so many bids "win" at one price there.
    loadgen "$server hello (baseline)" climb "http://127.0.0.1:$hport" hello -check-wins=false
    stop_pid "$hpid"
  done

  nport=$(free_port)
  nats-server -a 127.0.0.1 -p "$nport" -js -sd "$work/nats" >"$work/nats.log" 2>&1 &
  pids+=($!)
  wait_until 10 nats port_busy "$nport" || exit 1

  n=0
  for conf in $CONFIGS; do
    IFS=: read -r strategy prefilter coalesce <<<"$conf"
    prefilter=${prefilter:-true}
    coalesce=${coalesce:-true}
    for mode in $MODES; do
      for share in $MAX_SHARES; do
        n=$((n + 1))
        gport=$(free_port)
        label="gateway $strategy, pre-filter $([ "$prefilter" = true ] && echo on || echo off)"
        [ "$coalesce" = true ] || label="$label, coalescing off"
        [ "$share" = 0 ] || label="$label, maxima $share"
        env SERVER_ADDR="127.0.0.1:$gport" REDIS_ADDR="127.0.0.1:$rport" NATS_URL="nats://127.0.0.1:$nport" \
          REDIS_STRATEGY="$strategy" "$PREFILTER_ENV=$prefilter" "$COALESCE_ENV=$coalesce" AUTO_CREATE_ITEMS=true AUTH_DISABLED=true \
          RATE_LIMIT_PER_USER=0 RATE_LIMIT_PER_IP=0 LOG_LEVEL=warn LOG_FORMAT=text \
          POSTGRES_URL="postgres://bidding:password@127.0.0.1:1/bidding?sslmode=disable&connect_timeout=1" \
          "$work/api-gateway" >"$work/gateway-$n.log" 2>&1 &
        gpid=$!
        pids+=($gpid)
        if ! wait_until 30 "gateway ($label)" curl -sf "http://127.0.0.1:$gport/health"; then
          cat "$work/gateway-$n.log" >&2
          exit 1
        fi
        # A fresh item per run, so every configuration starts from the same price.
        loadgen "$label" "$mode" "http://127.0.0.1:$gport" "bench_${stamp}_$n" -max-share "$share"
        stop_pid "$gpid"
      done
    done
  done
fi

evalsha 2

# --- 3. Table ----------------------------------------------------------------
touch "$rows"
table="$results/table.md"
/usr/bin/python3 - "$work/evalsha-1.csv,$work/evalsha-2.csv" "$rows" "$(nproc)" "$DURATION" "$CONCURRENCY" "$USERS" "$APPENDFSYNC" >"$table" <<'PY'
import csv, json, sys, datetime, platform

evalsha_csvs, rows_path, cores, duration, conc, users, appendfsync = sys.argv[1:8]
evs = []
for path in evalsha_csvs.split(","):
    with open(path) as f:
        evs.append(list(csv.DictReader(f))[0])
ev = max(evs, key=lambda e: float(e["rps"]))
ev_rps = float(ev["rps"])
model = "unknown CPU"
try:
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
except OSError:
    pass

print(f"Contended bids on one hot item, {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, "
      f"{cores} cores ({model}), {platform.system()} {platform.release()}.")
print(f"loadgen: {conc} workers, {users} users, {duration} per run; bids/s counts every answered bid (200 and 409).")
print(f"Redis append-only file: {'none' if appendfsync == 'none' else 'appendfsync ' + appendfsync} (the ceiling and the gateway alike).")
print()
print("| configuration | bids/s | ratio to EVALSHA | ratio to fasthttp hello | accepted/s | p50 ms | p99 ms | other answers |")
print("|---|---:|---:|---:|---:|---:|---:|---|")
runs = ", ".join(f"{float(e['rps']):,.0f}" for e in evs)
print(f"| redis-benchmark EVALSHA (one-key Lua CAS) | {ev_rps:,.0f} | 1.00 | - | - | "
      f"{float(ev['p50_latency_ms']):.3f} | {float(ev['p99_latency_ms']):.3f} | higher of {runs} (start, end) |")
def rate(v):
    # Flood runs accept a handful of bids; "0/s" would hide them.
    return f"{v:,.0f}" if v >= 100 else f"{v:.1f}"


rows = []
with open(rows_path) as f:
    for line in f:
        label, mode, path = line.rstrip("\n").split("\t")
        with open(path) as rf:
            rows.append((label, mode, json.load(rf)))
# The hello on the gateway's own server shares its machine, client and
# noise, so the ratio to it is the steadier of the two.
hello = next((r["requests_per_s"] for label, _, r in rows if label.startswith("fasthttp hello")), None)


def vs_hello(v):
    return f"{v / hello:.2f}" if hello else "-"


for label, mode, r in rows:
    other = {k: v for k, v in r["status"].items() if k not in ("200", "409")}
    notes = [f"{k}: {v}" for k, v in sorted(other.items())]
    if r["errors"]:
        notes.append(f"errors: {r['errors']}")
    if r.get("double_wins"):
        notes.append(f"DOUBLE WINS: {r['double_wins']}")
    lat = r["latency_ms"]
    print(f"| {label} [{mode}] | {r['requests_per_s']:,.0f} | {r['requests_per_s'] / ev_rps:.2f} | "
          f"{vs_hello(r['requests_per_s'])} | {rate(r['accepted_per_s'])} | {lat['p50']:.3f} | {lat['p99']:.3f} | {', '.join(notes) or '-'} |")
PY
cp "$work"/report-*.json "$results/" 2>/dev/null || true
cat "$table"
echo >&2
echo "table saved in ${table#"$root"/}" >&2

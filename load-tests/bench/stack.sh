#!/usr/bin/env bash
# A private copy of the whole system for the experiments: Redis, NATS
# (JetStream), PostgreSQL, and the gateway, broadcast service and archival
# worker built from this repository, all on free loopback ports with their
# data in a temporary folder. Unlike `make dev` it touches none of the
# standard ports, so it runs beside a dev stack and leaves nothing behind.
# Prints the addresses and ready-to-run experiment commands, then waits;
# Ctrl-C (or the end of a command given as arguments) stops everything.
#
# Usage: bench/stack.sh [COMMAND...]
#   With a command, runs it with GATEWAY_URL, BROADCAST_URL, REDIS_PORT,
#   NATS_PORT, POSTGRES_PORT, BROADCAST_PORT and ARCHIVAL_PORT exported, then
#   stops the stack and exits with the command's status.
#
# The gateway runs with AUTO_CREATE_ITEMS=true, AUTH_DISABLED=true and rate limits off (load
# tests), other settings at their defaults unless set in the environment. AUTH_DISABLED is
# for a benchmark: the load programs send no bearer tokens, and the stack listens on
# loopback only. The broadcast service runs with AUTH_DISABLED=true too (its personal
# channels check the same tokens) and WS_MAX_CONNS_PER_IP=0, since the 1,000 and 10,000
# viewers of the fan-out experiments all come from this machine's one address.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$(dirname "$here")")

work=""
die() {
  echo "stack: $*" >&2
  # The data folder goes with the stack, so show the logs' ends now.
  if [ -n "$work" ]; then
    for f in "$work"/*.log; do [ -s "$f" ] && { echo "--- ${f##*/}" >&2; tail -5 "$f" >&2; }; done
  fi
  exit 1
}
for bin in redis-server redis-cli nats-server go curl; do
  command -v "$bin" >/dev/null 2>&1 || die "$bin is missing (scripts/install-deps.sh installs it)"
done
pg_bin() {
  if command -v "$1" >/dev/null 2>&1; then command -v "$1"; return; fi
  ls -d /usr/lib/postgresql/*/bin/"$1" 2>/dev/null | sort -V | tail -1
}
[ -n "$(pg_bin initdb)" ] || die "PostgreSQL is missing (scripts/install-deps.sh installs it)"
for svc in api-gateway broadcast-service archival-worker; do
  [ -f "$root/$svc/cmd/main.go" ] || die "$svc/cmd/main.go does not exist yet"
done

work=$(mktemp -d "${TMPDIR:-/tmp}/stack.XXXXXX")
chmod 755 "$work"
pids=()
cleanup() {
  trap - EXIT INT TERM
  for ((i=${#pids[@]}-1; i>=0; i--)); do
    kill -TERM "${pids[$i]}" 2>/dev/null || continue
    for _ in $(seq 1 100); do kill -0 "${pids[$i]}" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "${pids[$i]}" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

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
wait_until() {
  local secs=$1 what=$2; shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || die "$what not ready after ${secs}s"
    sleep 0.1
  done
}

echo "stack: building the services" >&2
for svc in api-gateway broadcast-service archival-worker; do
  (cd "$root/$svc" && go build -o "$work/$svc" ./cmd)
done

REDIS_PORT=$(free_port)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" \
  --loglevel warning --protected-mode no >"$work/redis.log" 2>&1 &
pids+=($!)
NATS_PORT=$(free_port)
nats-server -a 127.0.0.1 -p "$NATS_PORT" -js -sd "$work/nats" >"$work/nats.log" 2>&1 &
pids+=($!)

# PostgreSQL refuses to run as root; run it as the postgres user then.
as_pg=()
if [ "$(id -u)" -eq 0 ]; then
  as_pg=(setpriv --reuid=postgres --regid=postgres --init-groups)
fi
POSTGRES_PORT=$(free_port)
mkdir -p "$work/pg"
[ ${#as_pg[@]} -eq 0 ] || chown postgres:postgres "$work/pg"
"${as_pg[@]}" "$(pg_bin initdb)" -D "$work/pg/data" -U postgres -A trust -E UTF8 --locale=C --no-sync \
  >"$work/initdb.log" 2>&1 || die "initdb failed: $(tail -5 "$work/initdb.log")"
"${as_pg[@]}" "$(pg_bin postgres)" -D "$work/pg/data" -p "$POSTGRES_PORT" -c listen_addresses=127.0.0.1 \
  -c unix_socket_directories="$work/pg" -c fsync=off >"$work/postgres.log" 2>&1 &
pids+=($!)

wait_until 10 redis redis-cli -p "$REDIS_PORT" ping
wait_until 10 nats port_busy "$NATS_PORT"
wait_until 30 postgres "$(pg_bin pg_isready)" -q -h 127.0.0.1 -p "$POSTGRES_PORT"
"$(pg_bin psql)" -q -h 127.0.0.1 -p "$POSTGRES_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 \
  -c "CREATE ROLE bidding LOGIN PASSWORD 'password'" -c "CREATE DATABASE bidding OWNER bidding" >/dev/null

pg_url="postgres://bidding:password@127.0.0.1:$POSTGRES_PORT/bidding?sslmode=disable"
GATEWAY_PORT=$(free_port)
BROADCAST_PORT=$(free_port)
ARCHIVAL_PORT=$(free_port)
export LOG_FORMAT=${LOG_FORMAT:-text} LOG_LEVEL=${LOG_LEVEL:-warn}
# A token setting inherited from a dev shell would clash with AUTH_DISABLED.
env -u AUTH_JWT_SECRET -u AUTH_JWKS_URL -u AUTH_DEV_TOKENS \
  SERVER_ADDR="127.0.0.1:$GATEWAY_PORT" REDIS_ADDR="127.0.0.1:$REDIS_PORT" NATS_URL="nats://127.0.0.1:$NATS_PORT" \
  POSTGRES_URL="$pg_url" AUTO_CREATE_ITEMS=true AUTH_DISABLED=true RATE_LIMIT_PER_USER=0 RATE_LIMIT_PER_IP=0 \
  "$work/api-gateway" >"$work/api-gateway.log" 2>&1 &
pids+=($!)
env -u AUTH_JWT_SECRET -u AUTH_JWKS_URL -u AUTH_DEV_TOKENS \
  SERVER_ADDR="127.0.0.1:$BROADCAST_PORT" NATS_URL="nats://127.0.0.1:$NATS_PORT" WS_MAX_CONNS_PER_IP=0 AUTH_DISABLED=true \
  GATEWAY_URL="http://127.0.0.1:$GATEWAY_PORT" "$work/broadcast-service" >"$work/broadcast-service.log" 2>&1 &
pids+=($!)
env HTTP_ADDR="127.0.0.1:$ARCHIVAL_PORT" NATS_URL="nats://127.0.0.1:$NATS_PORT" POSTGRES_URL="$pg_url" \
  "$work/archival-worker" >"$work/archival-worker.log" 2>&1 &
pids+=($!)
wait_until 30 api-gateway curl -sf "http://127.0.0.1:$GATEWAY_PORT/ready"
wait_until 30 broadcast-service curl -sf "http://127.0.0.1:$BROADCAST_PORT/ready"
wait_until 30 archival-worker curl -sf "http://127.0.0.1:$ARCHIVAL_PORT/ready"

export GATEWAY_URL="http://127.0.0.1:$GATEWAY_PORT" BROADCAST_URL="ws://127.0.0.1:$BROADCAST_PORT"
export REDIS_PORT NATS_PORT POSTGRES_PORT BROADCAST_PORT ARCHIVAL_PORT

cat >&2 <<EOF
stack: gateway $GATEWAY_URL, broadcast $BROADCAST_URL, archival :$ARCHIVAL_PORT,
       redis :$REDIS_PORT, nats :$NATS_PORT, postgres :$POSTGRES_PORT; logs in $work (removed on exit)
  /usr/bin/python3 websocket_fanout_test.py --gateway $GATEWAY_URL --broadcast $BROADCAST_URL --connections 1000 --bids 100 --interval 0.1
  go run ./cmd/fanout -ws $BROADCAST_URL -metrics http://127.0.0.1:$BROADCAST_PORT/metrics -nats nats://127.0.0.1:$NATS_PORT -viewers 1000 -rates 10
  /usr/bin/python3 run_experiment3.py --gateway $GATEWAY_URL --pause nats=$NATS_PORT --pause postgres=$POSTGRES_PORT \\
      --pause broadcast=$BROADCAST_PORT --pause archival=$ARCHIVAL_PORT --pause redis=$REDIS_PORT \\
      --health redis=$GATEWAY_URL/ready --check-history
EOF

if [ $# -gt 0 ]; then
  set +e
  "$@"
  status=$?
  set -e
  exit $status
fi
echo "stack: running; Ctrl-C stops it" >&2
wait -n "${pids[@]}" || true
die "a process exited"

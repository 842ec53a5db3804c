#!/usr/bin/env bash
# make dev: the whole system on this machine, without Docker. Starts Redis,
# NATS (JetStream) and PostgreSQL from the machine's binaries with their data
# in .dev/ (kept between runs), then every service that exists, with one
# combined log prefixed per process. Ctrl-C stops everything.
#
# Usage: scripts/dev.sh [all|deps|api|broadcast|archival]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
what=${1:-all}
data="$root/.dev"
mkdir -p "$data/logs"

[ "$what" = all ] || [ "$what" = deps ] && scripts/install-deps.sh

REDIS_PORT=${DEV_REDIS_PORT:-6379}
NATS_PORT=${DEV_NATS_PORT:-4222}
NATS_HTTP_PORT=${DEV_NATS_HTTP_PORT:-8222}
PG_PORT=${DEV_PG_PORT:-5432}

pids=()
cleanup() {
  trap - INT TERM EXIT
  echo "[dev] stopping"
  # Services first (they drain and flush), then the servers they use.
  for ((i=${#pids[@]}-1; i>=0; i--)); do
    kill -TERM "${pids[$i]}" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "${pids[$i]}" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "${pids[$i]}" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  echo "[dev] stopped"
}
trap cleanup INT TERM EXIT

# prefixed NAME CMD...: runs CMD with its output prefixed, remembers its pid.
prefixed() {
  local name=$1; shift
  # exec inside the subshell so the pid we keep is the process itself.
  ( exec "$@" ) > >(sed -u "s/^/[$name] /") 2>&1 &
  pids+=($!)
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
need_port() {
  if port_busy "$1"; then
    echo "[dev] port $1 ($2) is already in use: stop what holds it or set $3" >&2
    exit 1
  fi
}

pg_bin() {
  if command -v "$1" >/dev/null 2>&1; then command -v "$1"; return; fi
  ls -d /usr/lib/postgresql/*/bin/"$1" 2>/dev/null | sort -V | tail -1
}

# PostgreSQL refuses to run as root; run it as the postgres user then.
as_pg=()
if [ "$(id -u)" -eq 0 ]; then
  as_pg=(setpriv --reuid=postgres --regid=postgres --init-groups)
fi

start_deps() {
  need_port "$REDIS_PORT" redis DEV_REDIS_PORT
  need_port "$NATS_PORT" nats DEV_NATS_PORT
  need_port "$PG_PORT" postgres DEV_PG_PORT

  mkdir -p "$data/redis" "$data/nats"
  # Every write is in the append-only file before Redis answers, as in
  # Docker Compose: a bid answered 200 survives a crash of redis-server.
  prefixed redis redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$data/redis" \
    --appendonly yes --appendfsync always --save "" --protected-mode no
  # One NATS server, so streams keep one replica (the services' default
  # NATS_STREAM_REPLICAS=1); Docker Compose and AWS run a three-node cluster.
  prefixed nats nats-server -a 127.0.0.1 -p "$NATS_PORT" -m "$NATS_HTTP_PORT" -js -sd "$data/nats"

  local pgdata="$data/postgres"
  if [ ! -f "$pgdata/PG_VERSION" ]; then
    mkdir -p "$pgdata"
    [ ${#as_pg[@]} -gt 0 ] && chown postgres:postgres "$pgdata"
    "${as_pg[@]}" "$(pg_bin initdb)" -D "$pgdata" -U postgres -A trust -E UTF8 --locale=C >"$data/logs/initdb.log"
  fi
  [ ${#as_pg[@]} -gt 0 ] && chown -R postgres:postgres "$pgdata"
  prefixed postgres "${as_pg[@]}" "$(pg_bin postgres)" -D "$pgdata" -p "$PG_PORT" \
    -c listen_addresses=127.0.0.1 -c unix_socket_directories="$pgdata"

  for _ in $(seq 1 150); do
    "$(pg_bin pg_isready)" -q -h 127.0.0.1 -p "$PG_PORT" -U postgres && break
    sleep 0.2
  done
  # The README's database, user and password.
  "$(pg_bin psql)" -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
SELECT 'CREATE ROLE bidding LOGIN PASSWORD ''password''' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'bidding')\gexec
SELECT 'CREATE DATABASE bidding OWNER bidding' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'bidding')\gexec
SQL
  for _ in $(seq 1 100); do
    redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break
    sleep 0.1
  done
  echo "[dev] redis :$REDIS_PORT, nats :$NATS_PORT (monitor :$NATS_HTTP_PORT), postgres :$PG_PORT; data in .dev/"
}

export REDIS_ADDR="127.0.0.1:$REDIS_PORT"
export NATS_URL="nats://127.0.0.1:$NATS_PORT"
export POSTGRES_URL="postgres://bidding:password@127.0.0.1:$PG_PORT/bidding?sslmode=disable"
export AUTO_CREATE_ITEMS=${AUTO_CREATE_ITEMS:-true}
export LOG_FORMAT=${LOG_FORMAT:-text}

# The gateway and the broadcast service (its personal channels) refuse to
# start without a way to check tokens; both read these variables. The local
# stack signs them with a secret of its own, made on the first run and kept
# in .dev/ (git ignores it), and lets the live page ask for a development
# token (AUTH_DEV_TOKENS). A secret already in the environment wins, and
# AUTH_DISABLED=true (load runs, whose clients send no tokens) or an
# AUTH_JWKS_URL is taken as given: the services refuse two ways at once.
secret_file="$data/auth-jwt-secret"
case "$(printf %s "${AUTH_DISABLED:-}" | tr '[:upper:]' '[:lower:]')" in
  1|true|yes|on) other_auth=1 ;;
  *) other_auth=${AUTH_JWKS_URL:+1} ;;
esac
if [ -z "$other_auth" ]; then
  if [ -z "${AUTH_JWT_SECRET:-}" ]; then
    if [ ! -s "$secret_file" ]; then
      (umask 077 && od -An -N32 -tx1 /dev/urandom | tr -d ' \n' >"$secret_file")
    fi
    AUTH_JWT_SECRET=$(cat "$secret_file")
  fi
  export AUTH_JWT_SECRET
  export AUTH_DEV_TOKENS=${AUTH_DEV_TOKENS:-true}
fi

# service NAME DIR: builds and runs a service if its main package exists.
service() {
  local name=$1 dir=$2
  if [ ! -f "$dir/cmd/main.go" ]; then
    echo "[dev] $dir has no cmd/main.go yet; skipping"
    return
  fi
  (cd "$dir" && go build -o "bin/$dir" ./cmd)
  prefixed "$name" "$root/$dir/bin/$dir"
}

case "$what" in
  deps) start_deps ;;
  # One service alone, against dependencies already running (make dev-deps).
  api) service api api-gateway ;;
  broadcast) service broadcast broadcast-service ;;
  archival) service archival archival-worker ;;
  all)
    start_deps
    service api api-gateway
    service broadcast broadcast-service
    service archival archival-worker
    ;;
  *) echo "usage: $0 [all|api|broadcast|archival|deps]" >&2; exit 2 ;;
esac

echo "[dev] running; Ctrl-C stops everything"
# Exit (and clean up) as soon as any process dies, so a crash is noticed.
wait -n "${pids[@]}" || true

#!/usr/bin/env sh
# Writes the secrets Docker Compose reads (infrastructure/docker/.env, git
# ignored): a random value for each one the file lacks. An existing value is
# never changed, since the data volumes were initialised with it (PostgreSQL
# keeps the password it was first started with). `make run` calls this.
#
# Usage: scripts/compose-env.sh [file]
set -eu
cd "$(dirname "$0")/.."
file=${1:-infrastructure/docker/.env}

# 32 random bytes, hex: safe in URLs, shell words and config files.
random_hex() {
  if command -v openssl >/dev/null 2>&1; then
    openssl rand -hex 32
  else
    od -An -N32 -tx1 /dev/urandom | tr -d ' \n'
    echo
  fi
}

umask 077
[ -f "$file" ] || : >"$file"
added=
for key in REDIS_PASSWORD POSTGRES_PASSWORD NATS_GATEWAY_PASSWORD NATS_BROADCAST_PASSWORD \
  NATS_ARCHIVER_PASSWORD AUTH_JWT_SECRET; do
  if ! grep -q "^$key=" "$file"; then
    printf '%s=%s\n' "$key" "$(random_hex)" >>"$file"
    added="$added $key"
  fi
done
if [ -n "$added" ]; then
  echo "compose-env: generated$added in $file"
fi

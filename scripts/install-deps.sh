#!/usr/bin/env bash
# Installs what the tests and the local stack need and the machine lacks:
# redis-server, nats-server, PostgreSQL, Chromium (browser test) and the
# Python load-test tools. On Debian/Ubuntu it uses apt; elsewhere it prints
# what to install. It does nothing when everything is present.
set -euo pipefail

missing=()
have() { command -v "$1" >/dev/null 2>&1; }
have_pg() { have initdb || compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; }
have_py() { /usr/bin/python3 -c "import $1" >/dev/null 2>&1; }

have redis-server || missing+=(redis-server)
have redis-cli || missing+=(redis-tools)
have nats-server || missing+=(nats-server)
have_pg || missing+=(postgresql)
have chromium || missing+=(chromium)
have_py locust || missing+=(python3-locust)
have_py websockets || missing+=(python3-websockets)
# make infra-check validates infrastructure/docker/docker-compose.yml with it (no engine needed).
have docker-compose || missing+=(docker-compose)

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

if ! have go; then
  echo "install-deps: Go is missing too: install it from https://go.dev/dl/ (version in go.work)" >&2
fi

if have apt-get; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if have sudo; then sudo="sudo"; else
      echo "install-deps: missing ${missing[*]}; run as root: apt-get install ${missing[*]}" >&2
      exit 1
    fi
  fi
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get -o DPkg::Lock::Timeout=300 update -qq
  $sudo apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian's packages start their services on some systems; the tests and
  # make dev run their own servers, so leave the system ones alone.
  exit 0
fi

echo "install-deps: this is not Debian/Ubuntu; install these yourself: ${missing[*]}" >&2
echo "  (on macOS: brew install redis nats-server postgresql@15 chromium; pip install locust websockets)" >&2
exit 1

#!/usr/bin/env bash
# Runs every module's tests with the race detector against real servers, and
# fails if any module fails. Extra arguments go to go test (e.g. -run Foo).
set -uo pipefail
cd "$(dirname "$0")/.."

modules=(shared api-gateway broadcast-service archival-worker load-tests infrastructure)
failed=()
for m in "${modules[@]}"; do
  echo "=== go test $m"
  if [ -z "$(cd "$m" && go list ./... 2>/dev/null)" ]; then
    echo "(no packages yet)"
    continue
  fi
  if ! (cd "$m" && go test -race -count=1 -timeout 20m "$@" ./...); then
    failed+=("$m")
  fi
done

if grep -q '^infra-check:' Makefile; then
  echo "=== infrastructure checks"
  INFRA_CHECK_SKIP_GO=1 make --no-print-directory infra-check || failed+=(infrastructure-checks)
fi

if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED: ${failed[*]}"
  exit 1
fi
echo "all modules passed"

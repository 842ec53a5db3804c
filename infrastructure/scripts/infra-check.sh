#!/usr/bin/env bash
# Offline checks of the deployment files (`make infra-check`; `make test` runs
# it too). Each tool is used when present; when one is missing this says so
# and the Go checks in infrastructure/check cover what they can:
#   - docker-compose config -q      (Debian's Compose 1.29; needs no engine)
#   - terraform init/validate/fmt/test against a local provider mirror
#     (TF_PLUGIN_DIR, or the parent of a registry.terraform.io folder)
#   - go test ./... in the infrastructure module (compose vs README, HCL
#     variable consistency, Dockerfile build steps with the Makefile's flags)
set -uo pipefail
cd "$(dirname "$0")/../.."

failed=()
step() { echo "infra-check: $*"; }

compose=infrastructure/docker/docker-compose.yml
if command -v docker-compose >/dev/null 2>&1; then
  step "docker-compose config -q (with secrets generated as make run does)"
  # A throwaway .env, so the check neither needs nor touches the real one.
  env_file=$(mktemp)
  rm -f "$env_file"
  scripts/compose-env.sh "$env_file" >/dev/null
  docker-compose -f "$compose" --env-file "$env_file" config -q || failed+=("docker-compose config")
  rm -f "$env_file"
else
  step "docker-compose not installed: compose is checked only by the Go tests (scripts/install-deps.sh installs it)"
fi

plugin_dir=${TF_PLUGIN_DIR:-}
if [ -z "$plugin_dir" ]; then
  found=$(find / -xdev -maxdepth 4 -type d -name registry.terraform.io 2>/dev/null | head -n 1)
  [ -n "$found" ] && plugin_dir=$(dirname "$found")
fi
if ! command -v terraform >/dev/null 2>&1; then
  step "terraform not installed: falling back to the Go HCL checks (every variable used is declared and vice versa)"
elif [ -z "$plugin_dir" ]; then
  step "no provider mirror (registry.terraform.io folder) found, so terraform cannot init offline: falling back to the Go HCL checks"
else
  tf=infrastructure/terraform
  # Keep terraform's working data out of the repository, and deep enough
  # that its provider copy is not found by the search above next time.
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  data_dir=$tmp/terraform/data
  mkdir -p "$data_dir"
  # No CLI configuration is needed offline; an empty one silences the warning.
  export TF_DATA_DIR=$data_dir TF_IN_AUTOMATION=1 TF_CLI_CONFIG_FILE=/dev/null
  step "terraform init -backend=false -plugin-dir=$plugin_dir"
  if terraform -chdir="$tf" init -backend=false -plugin-dir="$plugin_dir" -input=false -no-color >"$data_dir/init.log" 2>&1; then
    step "terraform validate"
    terraform -chdir="$tf" validate -no-color || failed+=("terraform validate")
    step "terraform test (mock provider)"
    terraform -chdir="$tf" test -no-color || failed+=("terraform test")
  else
    cat "$data_dir/init.log"
    failed+=("terraform init")
  fi
  step "terraform fmt -check -recursive"
  terraform -chdir="$tf" fmt -check -recursive -diff || failed+=("terraform fmt")
fi

# make test has already run the module's tests with the race detector.
if [ -z "${INFRA_CHECK_SKIP_GO:-}" ]; then
  step "go test ./... (infrastructure module)"
  (cd infrastructure && go test -count=1 ./...) || failed+=("go test")
fi

if [ ${#failed[@]} -gt 0 ]; then
  step "FAILED: ${failed[*]}"
  exit 1
fi
step "all passed"

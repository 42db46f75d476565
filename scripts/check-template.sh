#!/usr/bin/env bash
# Offline checks of template.yaml (`make template`, part of `make test`):
#   1. sam validate --lint
#   2. cfn-lint on the SAM template and on the transformed template (the only
#      place circular dependencies show), plus proof that a rotation cycle fails
#   3. checkov (own venv, --skip-download): 0 failed; skips are justified in
#      each resource's Metadata
#   4. sam build (arm64, as deployed): artifact contents and architecture
#   5. an x86_64 twin of the build (this machine cannot load arm64 wheels),
#      each handler imported and invoked in a bare python3.13 with only its
#      artifact on sys.path
# Needs only package registries (PyPI). Tool venvs live in .venv-tools/,
# keyed by a hash of their pinned requirements, so reruns reuse them.
set -euo pipefail
cd "$(dirname "$0")/.."

TOOLS_DIR=.venv-tools
TOOLS_PYTHON=${TOOLS_PYTHON:-python3}
CHECKS_DIR=.aws-sam/checks
BUILD_DIR=.aws-sam/build
SMOKE_BUILD_DIR=.aws-sam/smoke-x86_64
export SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION=${AWS_DEFAULT_REGION:-us-east-1}
export PIP_DISABLE_PIP_VERSION_CHECK=1
mkdir -p "$TOOLS_DIR" "$CHECKS_DIR"

started=$(date +%s)
step_started=$started
step() {
  local now
  now=$(date +%s)
  if [ -n "${current_step:-}" ]; then
    printf '   (%ss)\n' "$((now - step_started))"
  fi
  current_step=$1
  step_started=$now
  printf '== %s\n' "$1"
}

# Run a command with its output in a log file; show the log only on failure.
logged() {
  local name=$1
  shift
  if ! "$@" >"$CHECKS_DIR/$name.log" 2>&1; then
    grep -v "is ignored: it is neither a file nor a directory" "$CHECKS_DIR/$name.log" | tail -n 60 >&2
    echo "FAILED: $* (full log: $CHECKS_DIR/$name.log)" >&2
    return 1
  fi
}

# venv_path NAME REQUIREMENTS: the tool venv for these exact pins and Python.
venv_path() {
  local key
  key=$({ cat "$2"; "$TOOLS_PYTHON" --version; } | cksum | cut -d' ' -f1)
  printf '%s/%s-%s\n' "$TOOLS_DIR" "$1" "$key"
}

# ensure_venv NAME REQUIREMENTS: create it unless complete; drop stale ones.
ensure_venv() {
  local venv
  venv=$(venv_path "$1" "$2")
  if [ ! -f "$venv/.complete" ]; then
    rm -rf "$TOOLS_DIR/$1"-*
    "$TOOLS_PYTHON" -m venv "$venv"
    logged "install-$1" "$venv/bin/python" -m pip install --quiet -r "$2"
    touch "$venv/.complete"
  fi
}

# The Lambda runtime's Python (bytecode in the artifacts, the smoke test); with
# pyenv, select 3.13 alongside the default version without changing it.
lambda_python() {
  if command -v pyenv >/dev/null 2>&1 && [ -z "${PYENV_VERSION:-}" ]; then
    local v313
    v313=$(pyenv versions --bare 2>/dev/null | grep -E '^3\.13(\.[0-9]+)?$' | tail -n 1 || true)
    if [ -n "$v313" ]; then
      export PYENV_VERSION="$v313:$(pyenv version-name)"
    fi
  fi
  if ! python3.13 -c 'import sys; assert sys.version_info[:2] == (3, 13)' >/dev/null 2>&1; then
    echo "python3.13 (Lambda's runtime version) is needed for the smoke test and is not on PATH." >&2
    echo "Install it (e.g. pyenv install 3.13) and rerun." >&2
    return 1
  fi
}

step "tool venvs"
ensure_venv sam scripts/requirements-sam.txt &
sam_install=$!
ensure_venv checkov scripts/requirements-checkov.txt &
checkov_install=$!
wait "$sam_install"
wait "$checkov_install"
SAM_VENV=$(venv_path sam scripts/requirements-sam.txt)
CHECKOV_VENV=$(venv_path checkov scripts/requirements-checkov.txt)
SAM="$SAM_VENV/bin/sam"
lambda_python

step "sam validate --lint"
"$SAM" validate --lint --template-file template.yaml

step "cfn-lint: SAM template, transformed template, cycle canary"
"$SAM_VENV/bin/python" scripts/sam_transform.py template.yaml "$CHECKS_DIR/transformed.json"
"$SAM_VENV/bin/cfn-lint" template.yaml "$CHECKS_DIR/transformed.json"
"$SAM_VENV/bin/python" scripts/sam_transform.py --inject-rotation-cycle template.yaml \
  "$CHECKS_DIR/cyclic.json"
"$SAM_VENV/bin/cfn-lint" "$CHECKS_DIR/cyclic.json" >"$CHECKS_DIR/cyclic.log" 2>&1 || true
if grep -q E3004 "$CHECKS_DIR/cyclic.log"; then
  echo "cycle canary: a secret that depends on its rotation function is caught (E3004)"
else
  echo "FAILED: cfn-lint did not report the injected rotation cycle; the cycle check is blind" >&2
  exit 1
fi

step "checkov (SAM and transformed templates)"
"$CHECKOV_VENV/bin/checkov" --skip-download --quiet --compact --framework cloudformation \
  -f template.yaml -f "$CHECKS_DIR/transformed.json" >"$CHECKS_DIR/checkov.log" 2>&1 || {
  cat "$CHECKS_DIR/checkov.log" >&2
  exit 1
}
grep -E "^(Passed checks|cloudformation scan)" "$CHECKS_DIR/checkov.log" || true
echo "skipped (justified in template.yaml Metadata):" \
  "$(grep -oE '^ +- id: CKV[0-9A-Z_]+' template.yaml | awk '{print $3}' | sort -u | tr '\n' ' ')"

step "sam build (arm64, as deployed)"
export PIP="$SAM_VENV/bin/python -m pip"
# Fresh artifacts only: a file deleted from the source must not linger.
rm -rf "$BUILD_DIR" "$SMOKE_BUILD_DIR"
logged sam-build "$SAM" build --template-file template.yaml --build-dir "$BUILD_DIR" --parallel
"$SAM_VENV/bin/python" scripts/check_artifacts.py inspect "$CHECKS_DIR/transformed.json" \
  "$BUILD_DIR" --arch aarch64

step "smoke test: x86_64 twin, each handler alone with its artifact in python3.13 -I -S"
logged sam-build-x86_64 env LAMBDA_ARCH=x86_64 \
  "$SAM" build --template-file template.yaml --build-dir "$SMOKE_BUILD_DIR" --parallel
"$SAM_VENV/bin/python" scripts/check_artifacts.py inspect "$CHECKS_DIR/transformed.json" \
  "$SMOKE_BUILD_DIR" --arch x86_64 >/dev/null
"$SAM_VENV/bin/python" scripts/check_artifacts.py smoke "$CHECKS_DIR/transformed.json" \
  "$SMOKE_BUILD_DIR" --python "$(python3.13 -c 'import sys; print(sys.executable)')"

step "done"
echo "template checks passed in $(($(date +%s) - started))s"

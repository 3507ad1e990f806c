#!/usr/bin/env bash
# Schema-driven fuzzing of a running longhaul API: Schemathesis (from PyPI, in its own venv)
# reads GET /openapi.json, generates valid and invalid requests for every operation, and
# checks that no answer is a 5xx and that every answer (status, content type, headers, body)
# matches the document.
#
# Usage:  LONGHAUL_FUZZ_KEY=lh_... api/fuzz/schemathesis.sh http://127.0.0.1:8080
#
#   LONGHAUL_FUZZ_KEY           an API key with jobs:read and jobs:write (required; passed
#                               through the environment, never on a command line)
#   LONGHAUL_FUZZ_MAX_EXAMPLES  test cases per operation and phase (default 100)
#   LONGHAUL_FUZZ_SEED          a seed, to replay a run
#   LONGHAUL_FUZZ_VENV          where the venv lives (default ~/.cache/longhaul/schemathesis-VERSION)
#
# `?wait=` is pinned to 0: a long poll holds a request up to 60 s, which is the documented
# behaviour, not something to fuzz (the acceptance tests cover it).
#
# Exit status: 0 nothing found; 1 findings (details on stdout); 2 bad usage; 3 Python, venv or
# pip is unavailable, so the run could not happen (callers may treat it as skipped).
set -euo pipefail

SCHEMATHESIS_VERSION=4.32.5
CHECKS=not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance

base_url=${1:-}
if [[ -z "$base_url" || -z "${LONGHAUL_FUZZ_KEY:-}" ]]; then
  echo "usage: LONGHAUL_FUZZ_KEY=lh_... $0 BASE_URL" >&2
  exit 2
fi
venv=${LONGHAUL_FUZZ_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/longhaul/schemathesis-$SCHEMATHESIS_VERSION}

if [[ ! -x "$venv/bin/schemathesis" ]]; then
  echo "installing schemathesis $SCHEMATHESIS_VERSION into $venv" >&2
  mkdir -p "$(dirname "$venv")" || exit 3
  if ! python3 -m venv "$venv" >&2; then
    echo "python3 -m venv failed: cannot fuzz" >&2
    rm -rf "$venv"
    exit 3
  fi
  if ! "$venv/bin/pip" install --quiet --disable-pip-version-check \
    "schemathesis==$SCHEMATHESIS_VERSION" >&2; then
    echo "pip install schemathesis failed: cannot fuzz" >&2
    rm -rf "$venv"
    exit 3
  fi
fi

# Schemathesis keeps a cache (`.schemathesis/`) in its working directory: run it in a scratch
# directory so nothing lands in the repository.
work=$(mktemp -d "${TMPDIR:-/tmp}/longhaul-schemathesis.XXXXXX")
trap 'rm -rf "$work"' EXIT
config="$work/schemathesis.toml"
cat >"$config" <<'TOML'
headers = { Authorization = "Bearer ${LONGHAUL_FUZZ_KEY}" }

[parameters]
"query.wait" = 0
TOML

args=(
  --config-file "$config"
  run "${base_url%/}/openapi.json"
  --checks "$CHECKS"
  --phases coverage,fuzzing,stateful
  --max-examples "${LONGHAUL_FUZZ_MAX_EXAMPLES:-100}"
  --request-timeout 10
  --generation-database none
  --no-color
)
if [[ -n "${LONGHAUL_FUZZ_SEED:-}" ]]; then
  args+=(--seed "$LONGHAUL_FUZZ_SEED")
fi
status=0
(cd "$work" && "$venv/bin/schemathesis" "${args[@]}") || status=$?
# Schemathesis exits 1 on findings; anything else non-zero is also a failed run.
if [[ $status -ne 0 ]]; then
  exit 1
fi

#!/usr/bin/env bash
# Generates a Python client from openapi/openapi.json with
# openapi-python-client and calls every operation with it
# (scripts/python_client_calls.py) against the server of
# scripts/sample_api.sh; fails on any error, an unexpected status or a
# response the client cannot read.
#
#   PYTHON_CLIENT_VENV   reuse this virtualenv (default: a fresh one)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_base

work=$(mktemp -d)
# The embedded cluster may run as the postgres user, which must reach it.
chmod 755 "$work"
venv="${PYTHON_CLIENT_VENV:-$work/venv}"
ensure_venv "$venv" openapi-python-client openapi-python-client

. scripts/sample_api.sh
trap sample_api_cleanup EXIT
sample_api_start python-client

echo ">> generating the client" >&2
"$venv/bin/openapi-python-client" generate --path openapi/openapi.json \
    --output-path "$work/shelfwatch_client" --meta none >"$work/generate.out" 2>&1 \
    || { cat "$work/generate.out" >&2; exit 1; }
echo ">> calling every operation on $base" >&2
status=0
"$venv/bin/python" scripts/python_client_calls.py "$work" "$base" "$key" || status=$?
if [ "$status" -ne 0 ]; then
    echo "the generated client failed (server log: below)" >&2
    tail -n 30 "$work/serve.err" >&2
fi
exit "$status"

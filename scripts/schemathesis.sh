#!/usr/bin/env bash
# Fuzzes the API with schemathesis against the committed OpenAPI document
# (openapi/openapi.json): the server of scripts/sample_api.sh (a private
# database with the sample history, a forecast and matched products, an
# admin key so writes and admin endpoints are exercised too). Fails on any failed
# check (a 5xx, an undocumented status, a body off its schema, a
# schema-valid request refused, ...) or when fewer than 2500 requests were
# sent.
#
#   SCHEMATHESIS_EXAMPLES  test cases per operation and phase (default 150)
#   SCHEMATHESIS_VENV      reuse this virtualenv (default: a fresh one)
#   SCHEMATHESIS_SEED      generation seed (default 1, so runs repeat)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_base

examples="${SCHEMATHESIS_EXAMPLES:-150}"
work=$(mktemp -d)
# The embedded cluster may run as the postgres user, which must reach it.
chmod 755 "$work"
venv="${SCHEMATHESIS_VENV:-$work/venv}"
ensure_venv "$venv" schemathesis schemathesis

. scripts/sample_api.sh
trap sample_api_cleanup EXIT
sample_api_start schemathesis
echo ">> fuzzing $base ($examples cases per operation and phase)" >&2

# One worker: with several, hypothesis (under schemathesis 4.32) can fail
# with an internal "AST constructor recursion depth mismatch" error that
# says nothing about the API.
# Every check runs, positive_data_acceptance included: a schema-valid
# request must be accepted (or be a 404 for a retailer, cursor or product
# that does not exist, or a 409 past the watch quota). Generated webhook
# targets are pointed at the allow-listed address (scripts/
# schemathesis_hooks.py): whether a host may be a target depends on DNS
# and the allow-list, which no schema can state. The stateful phase
# follows the links schemathesis infers from the document (a created
# watch's id to GET and DELETE it, a job's id to GET it).
# Run from the scratch directory: schemathesis keeps a cache in the
# working directory.
status=0
repo=$PWD
(cd "$work" && SCHEMATHESIS_HOOKS="$repo/scripts/schemathesis_hooks.py" \
    "$venv/bin/schemathesis" run "$repo/openapi/openapi.json" \
    --url "$base" \
    --header "X-Api-Key: $key" \
    --checks all \
    --max-examples "$examples" \
    --seed "${SCHEMATHESIS_SEED:-1}" \
    --workers 1 \
    --report ndjson --report-dir "$work/report" \
    --no-color) || status=$?

# Count the requests actually sent: the point is breadth, so fail when the
# run was too small to mean anything.
requests=$(python3 - "$work"/report/*.ndjson <<'PY'
import json, sys
total = 0
for path in sys.argv[1:]:
    for line in open(path):
        event = json.loads(line).get("ScenarioFinished")
        if event:
            total += len(event["recorder"].get("interactions", {}))
print(total)
PY
)
echo ">> schemathesis sent $requests requests" >&2
if [ "$status" -ne 0 ]; then
    echo "schemathesis found failures (server log: below)" >&2
    tail -n 50 "$work/serve.err" >&2
    exit "$status"
fi
if [ "$requests" -lt 2500 ]; then
    echo "only $requests requests were generated; at least 2500 are required" >&2
    exit 1
fi

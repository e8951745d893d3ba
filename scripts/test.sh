#!/usr/bin/env bash
# Runs the whole test suite on this machine: installs what is missing
# (PostgreSQL 15, Node.js), starts TimescaleDB (WebAssembly build) for the
# compatibility tests, then `cargo test`. Each test run starts its own
# private PostgreSQL cluster; nothing global is touched.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_base
start_timescale
cargo test --locked --workspace "$@"
# The API against its OpenAPI document, fuzzed (SKIP_SCHEMATHESIS=1 skips it).
if [ -z "${SKIP_SCHEMATHESIS:-}" ]; then
    ./scripts/schemathesis.sh
fi
# A client generated from the document calls every operation
# (SKIP_PYTHON_CLIENT=1 skips it).
if [ -z "${SKIP_PYTHON_CLIENT:-}" ]; then
    ./scripts/python_client.sh
fi

#!/usr/bin/env bash
# `shelfwatch bench forecast` with statsforecast beside it: makes a
# throwaway Python venv with statsforecast, then runs the benchmark against
# the configured database (DATABASE_URL or the embedded one).
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${TMPDIR:-/tmp}/shelfwatch-statsforecast-venv"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet statsforecast
fi
exec "${CARGO_TARGET_DIR:-target}/release/shelfwatch" bench forecast --python "$venv/bin/python" "$@"

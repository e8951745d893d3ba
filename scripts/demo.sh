#!/usr/bin/env bash
# The newcomer's demo: installs what is missing, builds shelfwatch and runs
# `shelfwatch up` (embedded database, migrations, demo store, history, a scrape
# through Chromium, a forecast; it serves until Ctrl-C).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_base
cargo build --release --locked
exec "${CARGO_TARGET_DIR:-target}/release/shelfwatch" up "$@"

#!/usr/bin/env bash
# The newcomer's demo: installs what is missing, builds shelfwatch and runs
# `shelfwatch up` (embedded database, migrations, demo store, history, a scrape
# through Chromium, a forecast; it serves until Ctrl-C).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_base
# A debug build: about 8 minutes from cold here, against about 20 for
# release, and fast enough for the demo's few hundred listings.
cargo build --locked
exec "${CARGO_TARGET_DIR:-target}/debug/shelfwatch" up "$@"

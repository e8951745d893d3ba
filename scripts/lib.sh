# Shared by scripts/*.sh: install what is missing, start helper services.
# Sourced, not run.

# Installs the Debian packages named that are not installed yet.
ensure_packages() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
            || missing+=("$pkg")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        echo ">> installing ${missing[*]}" >&2
        local sudo=""
        [ "$(id -u)" -eq 0 ] || sudo="sudo"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
    fi
}

# The base toolchain: PostgreSQL 15 server and client, Chromium and
# chromedriver for the scraper, Prometheus and promtool for the demo and the
# observability tests (alert rules, dashboards' queries), curl and jq for the
# README's walkthrough (and its test), and Node.js for the
# TimescaleDB (WebAssembly) test server.
ensure_base() {
    ensure_packages postgresql postgresql-client util-linux chromium chromium-driver prometheus curl jq
    if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
        ensure_packages nodejs npm
    fi
    if ! command -v cargo >/dev/null; then
        echo "cargo is not installed: install Rust with rustup (https://rustup.rs)" >&2
        exit 1
    fi
}

# Starts the TimescaleDB WebAssembly server (tools/timescale) on a free port
# and exports TIMESCALE_TEST_URL. Stops it when the script exits.
start_timescale() {
    (cd tools/timescale && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    local out
    out=$(mktemp)
    node tools/timescale/server.mjs --port 0 >"$out" 2>"$out.err" &
    TIMESCALE_PID=$!
    trap 'kill $TIMESCALE_PID 2>/dev/null || true; wait $TIMESCALE_PID 2>/dev/null || true' EXIT
    for _ in $(seq 1 120); do
        if grep -q '^ready ' "$out"; then
            TIMESCALE_TEST_URL=$(sed -n 's/^ready //p' "$out" | head -n 1)
            export TIMESCALE_TEST_URL
            echo ">> TimescaleDB (wasm) at $TIMESCALE_TEST_URL" >&2
            return 0
        fi
        if ! kill -0 "$TIMESCALE_PID" 2>/dev/null; then
            echo "the TimescaleDB server exited:" >&2
            cat "$out.err" >&2
            return 1
        fi
        sleep 0.5
    done
    echo "the TimescaleDB server did not become ready in 60 s:" >&2
    cat "$out.err" >&2
    return 1
}

# Builds shelfwatch (cargo build flags: PROFILE-DIR [FLAGS...]) and copies
# it to $work/shelfwatch. The target directory may be shared with other
# checkouts building the same binary name: the copy must serve this
# checkout's API (its OpenAPI document), and is relinked if another build
# got in between.
own_binary() {
    local built="${CARGO_TARGET_DIR:-target}/$1/shelfwatch"
    shift
    for _ in 1 2 3; do
        cargo build --locked --quiet "$@"
        cp "$built" "$work/shelfwatch"
        if "$work/shelfwatch" serve --print-openapi | cmp -s - openapi/openapi.json; then
            return 0
        fi
        touch src/main.rs
    done
    echo "the built binary does not serve openapi/openapi.json (stale document?)" >&2
    exit 1
}

# A Python virtualenv at VENV with PACKAGE installed from PyPI, unless
# VENV/bin/COMMAND is there already.
ensure_venv() { # VENV PACKAGE COMMAND
    if [ ! -x "$1/bin/$3" ]; then
        echo ">> installing $2 into $1" >&2
        python3 -m venv "$1"
        "$1/bin/pip" install --quiet --disable-pip-version-check "$2"
    fi
}

# Starts `$bin serve` with CONFIG on a free loopback port, its log in LOG;
# sets server_pid and base (the API's URL) once it listens.
start_serve() { # CONFIG LOG
    : >"$work/serve.out"
    "$bin" --config "$1" serve --bind 127.0.0.1:0 --metrics-bind "" \
        >"$work/serve.out" 2>"$2" &
    server_pid=$!
    base=""
    for _ in $(seq 1 100); do
        base=$(sed -n 's/^API listening on //p' "$work/serve.out")
        [ -n "$base" ] && return 0
        sleep 0.1
    done
    echo "shelfwatch serve did not start:" >&2
    cat "$2" >&2
    exit 1
}

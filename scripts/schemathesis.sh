#!/usr/bin/env bash
# Fuzzes the API with schemathesis against the committed OpenAPI document
# (openapi/openapi.json): a private database with the sample history, a
# forecast and matched products, `shelfwatch serve` on a free port, an admin
# key so writes and admin endpoints are exercised too. Fails on any failed
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
if [ ! -x "$venv/bin/schemathesis" ]; then
    echo ">> installing schemathesis into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check schemathesis
fi

# The target directory may be shared with other checkouts building the same
# binary name: take a private copy and check it serves this checkout's API
# (its OpenAPI document), relinking ours if another build got in between.
own_binary() { # cargo build flags...
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
own_binary debug
bin="$work/shelfwatch"
for name in $(env | sed -n 's/^\(SHELFWATCH_[A-Z0-9_]*\)=.*/\1/p'); do unset "$name"; done
unset DATABASE_URL
export SHELFWATCH_DATABASE__EMBEDDED_DIR="$work/pg"
export RUST_LOG=warn

server_pid=""
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true
    "$bin" db stop >/dev/null 2>&1 || true
    [ -n "${KEEP_SCHEMATHESIS_WORK:-}" ] || rm -rf "$work"
}
trap cleanup EXIT

echo ">> seeding a database: sample history, a forecast, matched products" >&2
"$bin" db start >/dev/null
"$bin" migrate >/dev/null
"$bin" import samples/prices.csv --no-progress >/dev/null
"$bin" forecast >/dev/null
url=$("$bin" db url)
psql "$url" -v ON_ERROR_STOP=1 -q <<'SQL'
INSERT INTO products (id, name, brand, category) OVERRIDING SYSTEM VALUE VALUES
    (1000, 'Baked Beans in Tomato Sauce 415g', 'Heinz', 'Tins'),
    (1001, 'Semi Skimmed Milk 4 Pints', NULL, 'Dairy'),
    (1002, 'Soft White Medium Bread 800g', 'Hovis', 'Bakery'),
    (1003, 'Gold Blend Instant Coffee 200g', 'Nescafe', 'Drinks'),
    (1004, 'Original Tea Bags x240', 'PG Tips', 'Drinks'),
    (1005, 'Original Taste 6 x 330ml', 'Coca-Cola', 'Drinks'),
    (1006, 'Slightly Salted Butter 250g', 'Lurpak', 'Dairy'),
    (1007, 'Fusilli 500g', 'Napolina', 'Pasta'),
    (1008, 'Bananas Loose Each', NULL, 'Fruit'),
    (1009, 'Mature Cheddar 400g', 'Cathedral City', 'Dairy'),
    (1010, 'Smooth Orange Juice 1L', 'Tropicana', 'Drinks'),
    (1011, 'Free Range Eggs Large x12', NULL, 'Eggs');
UPDATE listings SET product_id = substring(retailer_sku FROM 3)::bigint;
SQL
key=$("$bin" apikey create --name schemathesis --scopes admin 2>/dev/null)

# No rate limits (the fuzzer is one busy client); webhooks may target this
# machine, as the schema's example does.
cat >"$work/shelfwatch.toml" <<'TOML'
[api.rate_limit]
per_ip_per_sec = 0
per_key_per_sec = 0
[api.webhooks]
allowed_hosts = ["127.0.0.1"]
TOML
"$bin" --config "$work/shelfwatch.toml" serve --bind 127.0.0.1:0 --metrics-bind "" \
    >"$work/serve.out" 2>"$work/serve.err" &
server_pid=$!
base=""
for _ in $(seq 1 100); do
    base=$(sed -n 's/^API listening on //p' "$work/serve.out")
    [ -n "$base" ] && break
    sleep 0.1
done
if [ -z "$base" ]; then
    echo "shelfwatch serve did not start:" >&2
    cat "$work/serve.err" >&2
    exit 1
fi
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

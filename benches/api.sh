#!/usr/bin/env bash
# API throughput and latency on a realistic database: 10,000 listings x 365
# days of observations (4 retailers, 2,500 products in 20 categories), the
# daily aggregates, a forecast run and its recommendations. The load is
# spread the way users spread it:
#
#   GET /healthz                      hello world: the server's ceiling
#   GET /v1/products/{id}             a uniformly random id over the catalogue
#   GET /v1/recommendations?...       random filters: retailer, category,
#                                     action, min_confidence (8,820 combinations)
#
# Two loads per route:
#   saturation  wrk -t2 -c64, a random path per request (benches/api_wrk.lua)
#   paced       `shelfwatch bench load`: open loop at RATE requests/s on a
#               fixed schedule, latency counted from each request's scheduled
#               time, so a slow answer cannot lower the offered rate
#
# Each runs with the response cache on (api.read_cache_ms = 2000, the
# default) and off (0, every read goes to the database). Then the anchor:
# a minimal Flask app (benches/anchor/app.py) running the same SQL
# statements for /v1/products/{id} under gunicorn (2 sync workers, then
# 2 x 8 gthread), installed into a throwaway venv. Rate limits are off:
# the load generator is one client.
#
#   PROFILE=release|debug (release)  LISTINGS (10000)  DAYS (365)
#   DURATION seconds per run (20)    RATE paced requests/s (1000)
#   ANCHOR=0 skips the Flask anchor
#
# Last, the database's own ceiling: pgbench runs each route's SQL with
# random keys straight against PostgreSQL (prepared statements, as many
# clients as the server has connections, generic plans as the server uses,
# no HTTP), on the same cores. No server can serve a route faster than
# that, so it says how much of a gap is the server's and how much the
# database's. Every row also says where the two cores went during it:
# the server, PostgreSQL, the load generator, idle.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_base
command -v wrk >/dev/null || ensure_packages wrk

profile="${PROFILE:-release}"
listings="${LISTINGS:-10000}"
days="${DAYS:-365}"
duration="${DURATION:-20}"
rate="${RATE:-1000}"
anchor="${ANCHOR:-1}"

work=$(mktemp -d)
chmod 755 "$work"
if [ "$profile" = release ]; then
    own_binary release --release
else
    own_binary debug
fi
bin="$work/shelfwatch"
for name in $(env | sed -n 's/^\(SHELFWATCH_[A-Z0-9_]*\)=.*/\1/p'); do unset "$name"; done
unset DATABASE_URL
export SHELFWATCH_DATABASE__EMBEDDED_DIR="$work/pg"
server_pid=""
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true
    "$bin" db stop >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

"$bin" db start >/dev/null
url=$("$bin" db url)
RUST_LOG=warn "$bin" migrate >/dev/null
echo ">> seeding $listings listings x $days days" >&2
seed_started=$(date +%s)
psql "$url" -v ON_ERROR_STOP=1 -q -v listings="$listings" -v days="$days" <<'SQL'
INSERT INTO retailers (slug, name) VALUES
    ('tesco', 'Tesco'), ('sainsburys', 'Sainsbury''s'), ('aldi', 'Aldi'), ('asda', 'Asda');
INSERT INTO products (name, brand, category, pack_count, pack_each, base_unit)
SELECT 'Product ' || g, 'Brand ' || (g % 200), 'Category ' || (g % 20), 1, 100 + g % 900, 'g'
FROM generate_series(1, :listings / 4) g;
INSERT INTO listings (retailer_id, retailer_sku, product_id, title, pack_count, pack_each,
                      base_unit, first_seen, last_seen)
SELECT (g - 1) % 4 + 1, 'sku-' || g, (g - 1) / 4 + 1, 'Listing ' || g, 1, 100 + ((g - 1) / 4 + 1) % 900,
       'g', now() - make_interval(days => :days), now()
FROM generate_series(1, :listings) g;
SELECT shelfwatch_ensure_partitions(now() - make_interval(days => :days + 1), now()) AS partitions \gset
-- One shelf reading a day at 08:00; a regular price per listing with
-- 25%-off promotions of 3-7 days on 14-, 21- or 28-day cycles.
INSERT INTO price_observations (listing_id, observed_at, price_pence, unit_price_pence,
    unit_price_per, promo_kind, effective_price_pence, in_stock)
SELECT l.id, x.at, y.p, y.p * 1000 / l.pack_each, 'kg',
       CASE WHEN x.promo THEN 'price_cut' ELSE 'none' END, y.p, true
FROM listings l
CROSS JOIN generate_series(0, :days - 1) AS d
CROSS JOIN LATERAL (
    SELECT date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
               - (:days - 1 - d) * interval '1 day' + interval '8 hours' AS at,
           (d + l.id * 7) % (14 + (l.id % 3) * 7) < 3 + l.id % 5 AS promo) x
CROSS JOIN LATERAL (
    SELECT CASE WHEN x.promo THEN (100 + l.id % 400) * 3 / 4 ELSE 100 + l.id % 400 END AS p) y
WHERE x.at <= now();
INSERT INTO price_daily (listing_id, day, open_pence, close_pence, min_pence, max_pence,
    mean_pence, sum_pence, observations, promo_observations, any_promo, min_effective_pence,
    in_stock_observations, first_at, last_at)
SELECT listing_id, time_bucket('1 day', observed_at), min(price_pence), min(price_pence),
       min(price_pence), max(price_pence), avg(price_pence), sum(price_pence), count(*),
       count(*) FILTER (WHERE promo_kind <> 'none'), bool_or(promo_kind <> 'none'),
       min(effective_price_pence), count(*), min(observed_at), max(observed_at)
FROM price_observations GROUP BY 1, 2;
VACUUM ANALYZE;
SQL
observations=$(psql "$url" -Atc 'SELECT count(*) FROM price_observations')
RUST_LOG=warn "$bin" forecast >/dev/null
echo ">> seeded $observations observations and a forecast in $(( $(date +%s) - seed_started )) s" >&2

start_server() { # read_cache_ms [RUST_LOG]
    [ -n "$server_pid" ] && kill "$server_pid" && wait "$server_pid" 2>/dev/null || true
    cat >"$work/bench.toml" <<TOML
[api]
read_cache_ms = $1
[api.rate_limit]
per_ip_per_sec = 0
per_key_per_sec = 0
TOML
    RUST_LOG="${2:-info}" start_serve "$work/bench.toml" "$work/serve.log"
    curl -fsS "$base/healthz" >/dev/null
}

# The keys users ask for: every product, and every filter combination.
products=$(( listings / 4 ))
seq 1 "$products" | sed 's|^|/v1/products/|' >"$work/products.paths"
for retailer in "" tesco sainsburys aldi asda; do
    for category in "" $(seq 0 19); do
        for action in "" buy_now wait hold; do
            for confidence in "" $(seq 0 5 95); do
                q="limit=20"
                [ -n "$retailer" ] && q="$q&retailer=$retailer"
                [ -n "$category" ] && q="$q&category=Category%20$category"
                [ -n "$action" ] && q="$q&action=$action"
                [ -n "$confidence" ] && q="$q&min_confidence=0.$(printf '%02d' "$confidence")"
                echo "/v1/recommendations?$q"
            done
        done
    done
done >"$work/recs.paths"
echo "/healthz" >"$work/healthz.paths"

# Where the cores went during a run, from the kernel's counters: every
# postgres process (and the backends that exited, through the
# postmaster's reaped-children counters), the load generator (its own
# CPU time from /usr/bin/time), the rest (the server under test, and
# anything else the kernel did), and idle. Shares of all cores' time.
all_ticks() { awk '/^cpu /{print $2+$3+$4+$5+$6+$7+$8+$9, $5+$6}' /proc/stat; }
proc_ticks() { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk '{t=$12+$13+$14+$15} END {print t+0}'; }
pg_ticks() {
    local t=0 p
    for p in $(pgrep -x postgres); do t=$(( t + $(proc_ticks "$p") )); done
    echo "$t"
}
cpu_before() { read -r cpu_all0 cpu_idle0 < <(all_ticks); cpu_pg0=$(pg_ticks); }
cpu_split() { # load-generator-seconds-file
    local all idle pg load hz
    read -r all idle < <(all_ticks)
    pg=$(( $(pg_ticks) - cpu_pg0 ))
    hz=$(getconf CLK_TCK)
    load=$(awk -v hz="$hz" '/^LOADCPU/ {printf "%.0f", ($2 + $3) * hz}' "$1")
    all=$(( all - cpu_all0 )); idle=$(( idle - cpu_idle0 ))
    awk -v a="$all" -v i="$idle" -v p="$pg" -v l="${load:-0}" 'BEGIN {
        s = a - i - p - l; if (s < 0) s = 0
        printf "%.0f / %.0f / %.0f / %.0f", 100 * s / a, 100 * p / a, 100 * l / a, 100 * i / a }'
}
run() { # label paths-file mode
    local label="$1" paths="$2" mode="$3" out result split
    cpu_before
    if [ "$mode" = paced ]; then
        out=$(/usr/bin/time -f 'LOADCPU %U %S' -o "$work/load.cpu" \
            "$bin" bench load --base "$base" --paths "$paths" --rate "$rate" --duration "$duration")
    else
        out=$(/usr/bin/time -f 'LOADCPU %U %S' -o "$work/load.cpu" \
            wrk -t2 -c64 -d"${duration}s" -s benches/api_wrk.lua "$base" -- "$paths")
    fi
    split=$(cpu_split "$work/load.cpu")
    result=$(grep '^RESULT' <<<"$out")
    local requests="" rps="" p50_ms="" p99_ms="" errors=""
    eval "$(sed 's/^RESULT //' <<<"$result")"
    printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$label" "$mode" "$rps" "$p50_ms" "$p99_ms" "$errors" "$split"
}
header() {
    echo
    echo "| route | load | requests/s | p50 ms | p99 ms | errors | CPU %: server / PostgreSQL / load generator / idle |"
    echo "|---|---|---|---|---|---|---|"
}
routes() {
    run "GET /healthz" "$work/healthz.paths" "$1"
    run "GET /v1/products/{random id}" "$work/products.paths" "$1"
    run "GET /v1/recommendations?{random filters}" "$work/recs.paths" "$1"
}
echo
echo "$listings listings x $days days ($observations observations), $products products, $profile build, $(nproc) cores shared with the load generator. Saturation: wrk -t2 -c64; paced: shelfwatch bench load, open loop at $rate req/s; ${duration}s each; a random key per request ($(wc -l <"$work/recs.paths") filter combinations)."
for cache in 0 2000; do
    echo
    if [ "$cache" = 0 ]; then
        echo "Response cache off (api.read_cache_ms = 0): every read goes to the database."
    else
        echo "Response cache on (api.read_cache_ms = 2000, the default): repeated keys within 2 s are answered from memory."
    fi
    start_server "$cache"
    header
    routes saturation
    routes paced
done
echo
echo "The per-request log line's cost: cache off, the request log off (RUST_LOG=warn) against on (info, above)."
start_server 0 warn
header
run "GET /healthz, no request log" "$work/healthz.paths" saturation
run "GET /v1/products/{random id}, no request log" "$work/products.paths" saturation
kill "$server_pid" && wait "$server_pid" 2>/dev/null || true
server_pid=""

if [ "$anchor" = 1 ]; then
    venv="${TMPDIR:-/tmp}/shelfwatch-anchor-venv"
    if [ ! -x "$venv/bin/gunicorn" ]; then
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet flask gunicorn 'psycopg[binary]'
    fi
    anchor_run() { # label gunicorn-args...
        local label="$1"
        shift
        (cd benches/anchor && SHELFWATCH_BENCH_DB="$url" "$venv/bin/gunicorn" --bind 127.0.0.1:0 \
            "$@" app:app >"$work/anchor.out" 2>"$work/anchor.log") &
        server_pid=$!
        base=""
        for _ in $(seq 1 100); do
            base=$(sed -n 's|.*Listening at: \(http://[0-9.:]*\).*|\1|p' "$work/anchor.log" | head -1)
            [ -n "$base" ] && break
            sleep 0.1
        done
        [ -n "$base" ] || { cat "$work/anchor.log" >&2; exit 1; }
        curl -fsS "$base/v1/products/1" >/dev/null
        run "Flask, $label: GET /v1/products/{random id}" "$work/products.paths" saturation
        run "Flask, $label: GET /v1/products/{random id}" "$work/products.paths" paced
        pkill -P "$server_pid" gunicorn 2>/dev/null || true
        kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true
        pkill -f "gunicorn.*app:app" 2>/dev/null || true
        server_pid=""
    }
    echo
    echo "Anchor: the same SQL statement in Flask under gunicorn, no cache."
    header
    anchor_run "2 sync workers" -w 2
    anchor_run "2 x 8 gthread" -w 2 -k gthread --threads 8
fi

# The database alone: the product statement the route and the anchor run
# (taken from the anchor, whose text a unit test holds equal to the
# server's), and the recommendations page in each of the 16 shapes its
# filters give (retailer, category, action, confidence floor: each present
# or not, as crates/store/src/recommendations.rs `page` builds them), mixed
# in the proportions of the wrk paths above (pgbench weights). pgbench
# runs with the server's pool size (database.max_connections, 8) and the
# server's planning (generic plans), so the ceiling is the one the server
# itself works under.
run_id=$(psql "$url" -Atc "SELECT max(id) FROM forecast_runs WHERE status = 'succeeded'")
{
    echo "\\set id random(1, $products)"
    python3 -c 'import ast,sys; src=open("benches/anchor/app.py").read(); t=ast.parse(src); page=[n.value.value for n in t.body if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "PAGE"][0]; print(page.replace("%s", ":id") + ";")'
} >"$work/product.pgbench"
recs_scripts=$(python3 - "$run_id" "$work" <<'PY'
import itertools, sys
run, work = sys.argv[1], sys.argv[2]
rank = "(CASE rc.action WHEN 'buy_now' THEN 0 WHEN 'wait' THEN 1 ELSE 2 END)"
args = []
for r, c, a, m in itertools.product([0, 1], repeat=4):
    sets, where = [], [f"rc.run_id = {run}"]
    # Weights: how many of the 8,820 paths have this shape (4 retailers,
    # 20 categories, 3 actions, 19 confidence floors above 0 and 0.00,
    # which the server does not filter on).
    weight = (4 if r else 1) * (20 if c else 1) * (3 if a else 1) * (19 if m else 2)
    if r:
        sets.append("\\set retailer random(1, 4)")
        where.append("rc.retailer_id = :retailer")
    if c:
        sets.append("\\set category random(0, 19)")
        where.append("rc.category = lower('Category ' || :category)")
    if a:
        sets.append("\\set action random(0, 2)")
        where.append(f"{rank} = :action")
    if m:
        sets.append("\\set conf random(1, 19)")
        where.append("rc.confidence >= :conf * 0.05")
    sql = (
        "SELECT rc.listing_id, l.product_id, p.name AS product_name, p.category,"
        " r.slug AS retailer, r.currency, l.title, rc.action, " + rank + " AS rank,"
        " rc.confidence, rc.claim, rc.message, rc.current_pence, rc.regular_pence,"
        " rc.expected_change_pence, rc.run_id, rc.as_of FROM recommendations rc"
        " JOIN listings l ON l.id = rc.listing_id JOIN retailers r ON r.id = l.retailer_id"
        " LEFT JOIN products p ON p.id = l.product_id WHERE " + " AND ".join(where) +
        " ORDER BY " + rank + ", rc.confidence DESC, rc.listing_id LIMIT 21;")
    path = f"{work}/recs-{r}{c}{a}{m}.pgbench"
    with open(path, "w") as f:
        f.write("\n".join(sets + [sql]) + "\n")
    args.append(f"-f {path}@{weight}")
print(" ".join(args))
PY
)
ceiling() { # label pgbench-script-args
    local out tps split
    cpu_before
    # shellcheck disable=SC2086 # the script arguments are words
    out=$(PGOPTIONS="-c plan_cache_mode=force_generic_plan" /usr/bin/time -f 'LOADCPU %U %S' \
        -o "$work/load.cpu" pgbench -n -M prepared -c 8 -j 2 -T "$duration" $2 "$url" 2>&1) || {
        echo "$out" >&2
        exit 1
    }
    split=$(cpu_split "$work/load.cpu")
    tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' <<<"$out" | head -1)
    printf '| %s | saturation | %.0f | | | | %s |\n' "$1" "$tps" "$split"
}
echo
echo "The database's ceiling: pgbench -M prepared -c 8 -j 2 (the server's pool size), generic plans as the server plans, the route's SQL with a random key per statement, no HTTP."
header
ceiling "pgbench: the /v1/products/{random id} statement" "-f $work/product.pgbench"
ceiling "pgbench: recommendations pages, random filters in the paths' mix" "$recs_scripts"

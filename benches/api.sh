#!/usr/bin/env bash
# API latency and throughput on a realistic database: 10,000 listings x 365
# days of observations (4 retailers, 2,500 products), the daily aggregates,
# a forecast run and its recommendations. One `shelfwatch serve` answers
# three routes, each measured with wrk at a fixed ~1,000 requests/s (paced
# by benches/api_wrk.lua) and at saturation:
#
#   GET /healthz                        hello world: the server's ceiling
#   GET /v1/recommendations?limit=20    the best-first list
#   GET /v1/products/{id}               a product across 4 retailers
#
# Prints Markdown tables for BENCHMARKS.md: with the default settings
# (request log at info, ETags, pool of 8, read responses reused for 2 s),
# then with every read going to the database (api.read_cache_ms = 0). Rate
# limits are off: wrk is one client.
#
#   PROFILE=release|debug (release)  LISTINGS (10000)  DAYS (365)
#   DURATION seconds per run (20)    RATE paced requests/s (1000)
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

start_server() { # read_cache_ms
    [ -n "$server_pid" ] && kill "$server_pid" && wait "$server_pid" 2>/dev/null || true
    cat >"$work/bench.toml" <<TOML
[api]
read_cache_ms = $1
[api.rate_limit]
per_ip_per_sec = 0
per_key_per_sec = 0
TOML
    start_serve "$work/bench.toml" "$work/serve.log"
    for path in /healthz "/v1/recommendations?limit=20" "/v1/products/$product"; do
        curl -fsS "$base$path" >/dev/null   # warm: the first request prepares statements
    done
}
product=$(( listings / 8 ))

connections=50
delay_ms=$(( connections * 1000 / rate ))
run() { # label path mode
    local label="$1" path="$2" mode="$3" out
    if [ "$mode" = paced ]; then
        out=$(wrk -t2 -c"$connections" -d"${duration}s" -s benches/api_wrk.lua "$base$path" -- "$delay_ms")
    else
        out=$(wrk -t2 -c64 -d"${duration}s" -s benches/api_wrk.lua "$base$path")
    fi
    local result
    result=$(grep '^RESULT' <<<"$out")
    eval "$(sed 's/^RESULT //' <<<"$result")"
    printf '| %s | %s | %s | %s | %s | %s |\n' "$label" "$mode" "$rps" "$p50_ms" "$p99_ms" "$errors"
}
header() {
    echo
    echo "| route | load | requests/s | p50 ms | p99 ms | errors |"
    echo "|---|---|---|---|---|---|"
}
echo
echo "$listings listings x $days days ($observations observations), $profile build, $(nproc) cores shared with the load generator; wrk -t2, paced: -c$connections at ~$rate req/s, saturation: -c64, ${duration}s each."
echo
echo "Defaults (read responses reused for 2 s):"
start_server 2000
header
run "GET /healthz" "/healthz" paced
run "GET /v1/recommendations?limit=20" "/v1/recommendations?limit=20" paced
run "GET /v1/products/{id}" "/v1/products/$product" paced
run "GET /healthz" "/healthz" saturation
run "GET /v1/recommendations?limit=20" "/v1/recommendations?limit=20" saturation
run "GET /v1/products/{id}" "/v1/products/$product" saturation
echo
echo "Every read from the database (api.read_cache_ms = 0):"
start_server 0
header
run "GET /v1/recommendations?limit=20" "/v1/recommendations?limit=20" paced
run "GET /v1/products/{id}" "/v1/products/$product" paced
run "GET /v1/recommendations?limit=20" "/v1/recommendations?limit=20" saturation
run "GET /v1/products/{id}" "/v1/products/$product" saturation

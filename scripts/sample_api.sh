# Sourced (after scripts/lib.sh) by scripts/schemathesis.sh and
# scripts/python_client.sh: this
# checkout's binary, a private database seeded with the sample history, a
# forecast and matched products (ids 1000 to 1011), an admin key, and
# `shelfwatch serve` on a free port, without rate limits (the caller is one
# busy client) and with webhooks allowed to target this machine.
#
#   sample_api_start NAME  needs $work (a scratch directory); sets bin (the
#                          binary), base (the API's URL), key (an admin API
#                          key named NAME) and server_pid
#   sample_api_cleanup     stops the server and the database, and removes
#                          $work unless KEEP_WORK is set

sample_api_start() { # NAME of the admin key
    own_binary debug
    bin="$work/shelfwatch"
    for name in $(env | sed -n 's/^\(SHELFWATCH_[A-Z0-9_]*\)=.*/\1/p'); do unset "$name"; done
    unset DATABASE_URL
    export SHELFWATCH_DATABASE__EMBEDDED_DIR="$work/pg"
    export RUST_LOG=warn

    server_pid=""
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
    key=$("$bin" apikey create --name "$1" --scopes admin 2>/dev/null)

    cat >"$work/shelfwatch.toml" <<'TOML'
[api.rate_limit]
per_ip_per_sec = 0
per_key_per_sec = 0
[api.webhooks]
allowed_hosts = ["127.0.0.1"]
TOML
    start_serve "$work/shelfwatch.toml" "$work/serve.err"
}

sample_api_cleanup() {
    [ -n "${server_pid:-}" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true
    [ -n "${bin:-}" ] && "$bin" db stop >/dev/null 2>&1 || true
    [ -n "${KEEP_WORK:-}" ] || rm -rf "$work"
}

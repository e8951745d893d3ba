"""The anchor for benches/api.sh: GET /v1/products/<id> the way a small
Flask service would serve it, with the same SQL statement shelfwatch runs
for that route (crates/store/src/product_page.rs: the product, each
listing's latest observation and latest recommendation in one round trip).
One connection per worker thread, no cache.

    SHELFWATCH_BENCH_DB=postgres://... gunicorn -w 2 app:app
"""

import os
import threading

import psycopg
from flask import Flask, abort, jsonify

app = Flask(__name__)
_local = threading.local()

PAGE = """SELECT p.id, p.name, p.brand, p.category, p.pack_count, p.pack_each, p.base_unit,
                p.gtin,
                o.listing_id, o.retailer, o.currency, o.title, o.url, o.observed_at,
                o.price_pence, o.was_price_pence, o.effective_price_pence, o.unit_price_pence,
                o.unit_price_per, o.promo_kind, o.promo_text, o.in_stock,
                rc.run_id AS rec_run_id, rc.as_of AS rec_as_of, rc.action AS rec_action,
                rc.confidence AS rec_confidence,
                rc.expected_change_pence AS rec_expected_change_pence,
                rc.message AS rec_message
         FROM products p
         LEFT JOIN LATERAL (
             SELECT l.id AS listing_id, r.slug AS retailer, r.currency, l.title, l.url,
                    ob.observed_at, ob.price_pence, ob.was_price_pence,
                    ob.effective_price_pence, ob.unit_price_pence, ob.unit_price_per,
                    ob.promo_kind, ob.promo_text, ob.in_stock
             FROM listings l
             JOIN retailers r ON r.id = l.retailer_id
             CROSS JOIN LATERAL (
                 SELECT * FROM price_observations ob
                 WHERE ob.listing_id = l.id ORDER BY ob.observed_at DESC LIMIT 1
             ) ob
             WHERE l.product_id = p.id
         ) o ON true
         LEFT JOIN LATERAL (
             SELECT rc.run_id, rc.as_of, rc.action, rc.confidence, rc.expected_change_pence,
                    rc.message
             FROM recommendations rc
             JOIN forecast_runs fr ON fr.id = rc.run_id AND fr.status = 'succeeded'
             WHERE rc.listing_id = o.listing_id
             ORDER BY rc.run_id DESC LIMIT 1
         ) rc ON true
         WHERE p.id = %s"""


def connection():
    conn = getattr(_local, "conn", None)
    if conn is None or conn.closed:
        conn = psycopg.connect(os.environ["SHELFWATCH_BENCH_DB"], autocommit=True)
        _local.conn = conn
    return conn


def rows(cur):
    names = [c.name for c in cur.description]
    return [dict(zip(names, r)) for r in cur.fetchall()]


@app.get("/healthz")
def healthz():
    return "ok"


@app.get("/v1/products/<int:product_id>")
def product(product_id):
    with connection().cursor() as cur:
        cur.execute(PAGE, (product_id,))
        found = rows(cur)
    if not found:
        abort(404)
    product_columns = ["id", "name", "brand", "category", "pack_count", "pack_each",
                       "base_unit", "gtin"]
    offers = []
    for row in found:
        if row["listing_id"] is None:
            continue
        offer = {k: v for k, v in row.items() if k not in product_columns}
        offer["observed_at"] = offer["observed_at"].isoformat()
        if offer["rec_as_of"] is not None:
            offer["rec_as_of"] = offer["rec_as_of"].isoformat()
        offers.append(offer)
    offers.sort(key=lambda o: (o["currency"], not o["in_stock"], o["effective_price_pence"],
                               o["retailer"], o["listing_id"]))
    cheapest = next((o for o in offers if o["in_stock"]), None)
    product = {k: found[0][k] for k in product_columns}
    return jsonify(product=product, offers=offers, cheapest=cheapest)

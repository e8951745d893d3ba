"""The anchor for benches/api.sh: GET /v1/products/<id> the way a small
Flask service would serve it, with the same three SQL statements shelfwatch
runs for that route (crates/store/src/catalogue.rs: product, offers,
latest_recommendations). One connection per worker thread, no cache.

    SHELFWATCH_BENCH_DB=postgres://... gunicorn -w 2 app:app
"""

import os
import threading

import psycopg
from flask import Flask, abort, jsonify

app = Flask(__name__)
_local = threading.local()

PRODUCT = """SELECT p.id, p.name, p.brand, p.category, p.pack_count, p.pack_each,
                    p.base_unit, p.gtin
             FROM products p WHERE p.id = %s"""

OFFERS = """SELECT l.id AS listing_id, r.slug AS retailer, r.currency, l.title, l.url,
                   o.observed_at, o.price_pence, o.was_price_pence, o.effective_price_pence,
                   o.unit_price_pence, o.unit_price_per, o.promo_kind, o.promo_text, o.in_stock
            FROM listings l
            JOIN retailers r ON r.id = l.retailer_id
            CROSS JOIN LATERAL (
                SELECT * FROM price_observations o
                WHERE o.listing_id = l.id ORDER BY o.observed_at DESC LIMIT 1
            ) o
            WHERE l.product_id = %s
            ORDER BY r.currency, o.in_stock DESC, o.effective_price_pence, r.slug, l.id"""

RECOMMENDATIONS = """SELECT DISTINCT ON (rc.listing_id) rc.listing_id, rc.run_id, rc.as_of,
                            rc.action, rc.confidence, rc.expected_change_pence, rc.message
                     FROM recommendations rc
                     JOIN forecast_runs fr ON fr.id = rc.run_id AND fr.status = 'succeeded'
                     WHERE rc.listing_id = ANY(%s)
                     ORDER BY rc.listing_id, rc.run_id DESC"""


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
        cur.execute(PRODUCT, (product_id,))
        found = rows(cur)
        if not found:
            abort(404)
        cur.execute(OFFERS, (product_id,))
        offers = rows(cur)
        cur.execute(RECOMMENDATIONS, ([o["listing_id"] for o in offers],))
        recs = {r["listing_id"]: r for r in rows(cur)}
    for o in offers:
        o["observed_at"] = o["observed_at"].isoformat()
        rec = recs.get(o["listing_id"])
        if rec is not None:
            rec["as_of"] = rec["as_of"].isoformat()
        o["recommendation"] = rec
    cheapest = next((o for o in offers if o["in_stock"]), None)
    return jsonify(product=found[0], offers=offers, cheapest=cheapest)

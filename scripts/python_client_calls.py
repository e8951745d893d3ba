"""Calls every operation of openapi/openapi.json through the client that
openapi-python-client generated from it (scripts/python_client.sh), against
a server with the sample data (scripts/sample_api.sh).

    python python_client_calls.py WORKDIR BASE_URL ADMIN_KEY

WORKDIR holds the generated package `shelfwatch_client`. Every call must
answer its documented success status with a body the client parses into
the documented model; the admin POSTs are sent without a body. Exits
non-zero on the first failure, and when an operation of the document was
not called.
"""

import datetime
import json
import pathlib
import sys

workdir, base_url, admin_key = sys.argv[1:4]
sys.path.insert(0, workdir)

from shelfwatch_client import AuthenticatedClient  # noqa: E402
from shelfwatch_client.api.admin import (  # noqa: E402
    enqueue_forecast,
    enqueue_scrape,
    get_job,
    list_runs,
)
from shelfwatch_client.api.catalogue import (  # noqa: E402
    get_product,
    list_products,
    list_retailers,
    product_forecast,
    product_prices,
)
from shelfwatch_client.api.health import healthz, readyz  # noqa: E402
from shelfwatch_client.api.recommendations import list_recommendations  # noqa: E402
from shelfwatch_client.api.watches import (  # noqa: E402
    create_watch,
    delete_watch,
    get_watch,
    list_watches,
)
from shelfwatch_client import models  # noqa: E402
from shelfwatch_client.types import UNSET  # noqa: E402

client = AuthenticatedClient(
    base_url=base_url, token=admin_key, raise_on_unexpected_status=True
)
called = set()


def call(module, status, model, **kwargs):
    """`module.sync_detailed(**kwargs)`, checked: the status and the model."""
    name = module.__name__.rsplit(".", 1)[-1]
    response = module.sync_detailed(client=client, **kwargs)
    if response.status_code != status:
        sys.exit(f"{name}: {response.status_code}, expected {status}: {response.content!r}")
    if model is not None and not isinstance(response.parsed, model):
        sys.exit(f"{name}: read as {type(response.parsed).__name__}, not {model.__name__}")
    called.add(name)
    print(f"ok {name} {status}")
    return response.parsed


call(healthz, 200, models.Status)
call(readyz, 200, models.Status)

retailers = call(list_retailers, 200, models.RetailerList)
slug = retailers.data[0].slug

first = call(list_products, 200, models.ProductPage, limit=2)
if not isinstance(first.next_cursor, str):
    sys.exit("list_products: the sample data has more than two products, but no next_cursor")
second = call(list_products, 200, models.ProductPage, limit=2, cursor=first.next_cursor)
if {p.id for p in first.data} & {p.id for p in second.data}:
    sys.exit("list_products: the second page repeats the first")
call(list_products, 200, models.ProductPage, q="beans", retailer=slug)

product = call(get_product, 200, models.ProductDetail, id=1000)
to = datetime.datetime.now(datetime.timezone.utc)
history = call(
    product_prices,
    200,
    models.PriceHistory,
    id=product.id,
    from_=to - datetime.timedelta(days=400),
    to=to,
    interval=models.Interval.WEEK,
)
if not history.series:
    sys.exit("product_prices: no price history for product 1000 in the sample data")
call(product_forecast, 200, models.ProductForecast, id=product.id)
call(
    list_recommendations,
    200,
    models.RecommendationPage,
    min_confidence=0.0,
    action=models.Action.BUY_NOW,
    limit=5,
)

hook = "http://127.0.0.1:9/shelfwatch"
at_price = call(
    create_watch,
    201,
    models.CreatedWatch,
    body=models.WatchAtPrice(product_id=product.id, target_price_pence=100, webhook_url=hook),
)
on_drop = call(
    create_watch,
    201,
    models.CreatedWatch,
    body=models.WatchOnDrop(product_id=product.id, drop_percent=10, webhook_url=hook, currency="GBP"),
)
if not at_price.secret.startswith("whsec_"):
    sys.exit("create_watch: the secret is not a whsec_ key")
page = call(list_watches, 200, models.WatchPage, limit=10)
if {w.id for w in page.data} != {at_price.id, on_drop.id}:
    sys.exit(f"list_watches: {[w.id for w in page.data]}, not the two made")
call(get_watch, 200, models.Watch, id=on_drop.id)
call(delete_watch, 204, None, id=on_drop.id)

# The admin POSTs without a body (the client sends none for UNSET), then
# with one.
job = call(enqueue_scrape, 202, models.Accepted)
if job.job.params.to_dict() != {}:
    sys.exit(f"enqueue_scrape without a body: params {job.job.params.to_dict()}, not all retailers")
one = call(enqueue_scrape, 202, models.Accepted, body=models.ScrapeRequest(retailer=slug))
if one.job.params.to_dict() != {"retailer": slug}:
    sys.exit(f"enqueue_scrape for {slug}: params {one.job.params.to_dict()}")
forecast = call(enqueue_forecast, 202, models.Accepted, body=UNSET)
call(get_job, 200, models.JobView, id=forecast.job.id)
call(list_runs, 200, models.Runs, limit=5)

document = json.loads(pathlib.Path("openapi/openapi.json").read_text())
documented = {
    op["operationId"]
    for path in document["paths"].values()
    for op in path.values()
    if isinstance(op, dict) and "operationId" in op
}
missing = documented - called
if missing:
    sys.exit(f"operations not called: {sorted(missing)}")
print(f"all {len(documented)} operations called through the generated client")

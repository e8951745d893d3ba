#!/usr/bin/env python3
"""Real weekly shelf-price histories to develop the forecast on.

Turns two panels of Dominick's Finer Foods data shipped by Debian's
`r-cran-bayesm` package into shelfwatch import CSVs (see README.md, "The
import CSV"):

- `tuna`: 7 canned tuna products at Dominick's (Chicago), 338 weeks from
  the week of 1989-09-14 (Dominick's week 1). `LPRICEi` is the log of the
  chain's average price of product i that week.
- `cheese`: one sliced cheese product at 88 US retailers ("key accounts"),
  52 to 68 weeks each. The panel has no dates: its rows come week by week,
  and a week is taken to end when a retailer reappears. The weeks are
  placed from 1990-01-04, a stand-in date (only spacing matters).

Units: the panels are in US dollars; the CSV treats a dollar as a pound, so
$0.91 becomes 91 pence. One observation per product per week, at 00:00 UTC
of the week's first day, so the series are weekly and the forecast must see
them as such. Nothing else is invented: no promotion text, no was price
(the panels have none that a shelf would show), and every product in stock.

The package also ships an orange juice panel. It is held out for
evaluating the forecast and must not be used to develop it: this script
reads only `tuna.rda` and `cheese.rda`, by name.

Usage:
    apt-get install r-cran-bayesm && pip install rdata
    python3 samples/dominicks.py tuna > /tmp/tuna.csv
    python3 samples/dominicks.py cheese > /tmp/cheese.csv
    shelfwatch import /tmp/tuna.csv
"""

import argparse
import csv
import datetime
import math
import os
import re
import sys

DATA_DIR = "/usr/lib/R/site-library/bayesm/data"

# Dominick's week 1 began on Thursday 1989-09-14.
TUNA_WEEK_1 = datetime.date(1989, 9, 14)
CHEESE_WEEK_1 = datetime.date(1990, 1, 4)

# The products of the tuna panel, in column order (bayesm's documentation).
TUNA_TITLES = [
    ("Star Kist Tuna 6oz", "170g"),
    ("Chicken of the Sea Tuna 6oz", "170g"),
    ("Bumble Bee Solid Tuna 6.12oz", "173g"),
    ("Bumble Bee Chunk Tuna 6.12oz", "173g"),
    ("Geisha Tuna 6oz", "170g"),
    ("Bumble Bee Large Cans Tuna", "Each"),
    ("HH Chunk Lite Tuna 6.5oz", "184g"),
]


def load(name):
    """One data frame from the package's `name.rda` (never orangeJuice)."""
    if name not in ("tuna", "cheese"):
        raise SystemExit(f"{name}: only the tuna and cheese panels are for development")
    try:
        import rdata
    except ImportError:
        raise SystemExit("needs Python's rdata: pip install rdata")
    path = os.path.join(DATA_DIR, f"{name}.rda")
    if not os.path.exists(path):
        raise SystemExit(f"{path} is missing: apt-get install r-cran-bayesm")
    converted = rdata.conversion.convert(rdata.parser.parse_file(path))
    return converted[name]


def pence(dollars):
    """Whole pence from a dollar amount (a dollar read as a pound); None
    for a price that is missing or not positive."""
    if dollars is None or not math.isfinite(dollars) or dollars <= 0:
        return None
    p = int(round(dollars * 100))
    return p if p > 0 else None


def stamp(day):
    return f"{day.isoformat()}T00:00:00Z"


def slug(text):
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9]+", "-", text.lower())).strip("-")


def tuna_rows():
    frame = load("tuna")
    for _, row in frame.iterrows():
        week = int(row["WEEK"])
        day = TUNA_WEEK_1 + datetime.timedelta(weeks=week - 1)
        for i, (title, pack) in enumerate(TUNA_TITLES, start=1):
            p = pence(math.exp(row[f"LPRICE{i}"]))
            if p is None:
                continue
            yield ("dominicks", f"tuna-{i}", title, stamp(day), p, pack)


def cheese_rows():
    frame = load("cheese")
    week = 0
    seen = set()
    for _, row in frame.iterrows():
        account = str(row["RETAILER"])
        if account in seen:
            week += 1
            seen = set()
        seen.add(account)
        p = pence(float(row["PRICE"]))
        if p is None:
            continue
        day = CHEESE_WEEK_1 + datetime.timedelta(weeks=week)
        yield (slug(account), "sliced-cheese", "Sliced Cheese (key account panel)", stamp(day), p, "Each")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("panel", choices=["tuna", "cheese"])
    args = parser.parse_args()
    rows = tuna_rows() if args.panel == "tuna" else cheese_rows()
    out = csv.writer(sys.stdout, lineterminator="\n")
    out.writerow(["retailer", "sku", "title", "observed_at", "price_pence", "in_stock", "pack_text"])
    for retailer, sku, title, observed_at, price, pack in rows:
        out.writerow([retailer, sku, title, observed_at, price, "true", pack])


if __name__ == "__main__":
    main()

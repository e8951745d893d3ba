#!/usr/bin/env python3
"""Writes samples/prices.csv: 90 days of twice-daily shelf prices for a dozen
products at three retailers, with irregular promotion cycles of varying
length and depth (was/now cuts, multi-buys, loyalty prices), occasional
permanent price rises and out-of-stock days.
Deterministic (seeded), so the committed file can be regenerated exactly:

    python3 samples/generate.py > samples/prices.csv

Longer and wider histories for backtests (not committed):

    python3 samples/generate.py --days 365 --copies 20 > /tmp/history.csv
"""
import argparse
import csv
import random
import sys
from datetime import datetime, timedelta, timezone

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--days", type=int, default=90, help="days of history ending 2026-11-20")
parser.add_argument("--copies", type=int, default=1, help="repeat the product range this many times")
args = parser.parse_args()

rng = random.Random(20261120)
END = datetime(2026, 11, 20, tzinfo=timezone.utc)
DAYS = args.days

PRODUCTS = [
    # (key, base pence, pack, titles per retailer)
    ("beans", 135, "415g", ["Heinz Beanz 415G", "Heinz Baked Beans in Tomato Sauce 415g", "Heinz Beanz 415g"]),
    ("milk", 155, "2.272L", ["Tesco British Semi Skimmed Milk 2.272L 4 Pints", "Sainsbury's Semi Skimmed Milk 2.27L", "Cowbelle Semi Skimmed Milk 4 Pints"]),
    ("bread", 140, "800g", ["Hovis Soft White Medium Bread 800G", "Hovis Soft White Medium Sliced Bread 800g", "Hovis Medium White 800g"]),
    ("coffee", 650, "200g", ["Nescafe Gold Blend Instant Coffee 200G", "Nescafé Gold Blend 200g", "Nescafe Gold 200g"]),
    ("tea", 450, "240 pack", ["PG Tips 240 Tea Bags 696G", "PG tips Original 240 Tea Bags", "PG Tips Tea Bags x240"]),
    ("cola", 210, "6 x 330ml", ["Coca-Cola Original Taste 6 X 330Ml", "Coca-Cola Original 6x330ml", "Coca Cola 6 Pack Cans 330ml"]),
    ("butter", 225, "250g", ["Lurpak Slightly Salted Butter 250G", "Lurpak Slightly Salted Block 250g", "Lurpak Butter 250g"]),
    ("pasta", 95, "500g", ["Napolina Fusilli Pasta 500G", "Napolina Fusilli 500g", "Napolina Fusilli 500 g"]),
    ("bananas", 18, "Each", ["Tesco Bananas Loose Each", "Sainsbury's Bananas Loose x1", "Loose Bananas Each"]),
    ("cheese", 375, "400g", ["Cathedral City Mature Cheddar 400G", "Cathedral City Mature Cheddar Cheese 400g", "Cathedral City Mature 400g"]),
    ("juice", 250, "1L", ["Tropicana Smooth Orange Juice 1L", "Tropicana Orange Juice Smooth 1 Litre", "Tropicana Smooth 1l"]),
    ("eggs", 199, "12 pack", ["Tesco 12 Large Free Range Eggs", "Sainsbury's Free Range Eggs Large x12", "Eggs Free Range Large 12 Pack"]),
]
RETAILERS = [("tesco", "Clubcard Price"), ("sainsburys", "Nectar Price"), ("aldi", None)]


def money(p):
    return f"£{p // 100}.{p % 100:02d}"


writer = csv.writer(sys.stdout, lineterminator="\n")
writer.writerow(["retailer", "sku", "title", "observed_at", "price_pence",
                 "was_price_pence", "promo_text", "in_stock", "pack_text"])
def promotions(cycle, phase):
    """Promotion events as {day: depth}: a start roughly every `cycle` days
    (give or take three), each lasting 3 to 7 days at 15% to 35% off, and
    now and then a deeper last-chance cut on its final two days."""
    days = {}
    start = phase
    while start < DAYS:
        length = rng.randint(3, 7)
        depth = rng.choice([0.15, 0.2, 0.25, 0.3, 0.35])
        deeper = rng.random() < 0.15
        for d in range(start, min(start + length, DAYS)):
            last_two = d >= start + length - 2
            days[d] = depth + (0.1 if deeper and last_two else 0.0)
        start += max(length + 2, cycle + rng.randint(-3, 3))
    return days


for copy in range(args.copies):
    for r_index, (retailer, loyalty) in enumerate(RETAILERS):
        for p_index, (key, base, pack, titles) in enumerate(PRODUCTS):
            regular = max(10, base + rng.randint(-15, 15) - (20 if retailer == "aldi" else 0))
            cycle = rng.choice([14, 21, 28])
            promo_days = promotions(cycle, rng.randrange(cycle))
            # Permanent price rises, now and then (about once a year).
            rises = {d for d in range(30, DAYS) if rng.random() < 1 / 365}
            kind = (p_index + r_index + copy) % 3
            sku = f"{retailer[:2].upper()}{1000 + p_index}" + (f"-{copy}" if copy else "")
            for day in range(DAYS):
                date = END - timedelta(days=DAYS - 1 - day)
                if day in rises:
                    regular += max(5, regular // 10)
                depth = promo_days.get(day)
                out_of_stock = rng.random() < 0.01
                for hour in (7, 19):
                    price, was, promo = regular, "", ""
                    if depth is not None:
                        if kind == 0:
                            price = max(1, round(regular * (1 - depth)))
                            was, promo = str(regular), f"Was {money(regular)} Now {money(price)}"
                        elif kind == 1 and loyalty:
                            promo = f"{loyalty} {money(round(regular * (1 - depth)))}"
                        else:
                            promo = f"2 for {money(round(regular * 2 * (1 - depth)))}"
                    observed = date.replace(hour=hour) + timedelta(minutes=rng.randrange(0, 20))
                    writer.writerow([retailer, sku, titles[r_index],
                                     observed.strftime("%Y-%m-%dT%H:%M:%SZ"), price, was, promo,
                                     "false" if out_of_stock else "true", pack])

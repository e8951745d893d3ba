#!/usr/bin/env python3
"""Writes samples/prices.csv: 90 days of twice-daily shelf prices for a dozen
products at three retailers, with promotion cycles, multi-buys, loyalty
prices, was/now prices, a permanent price rise and out-of-stock days.
Deterministic (seeded), so the committed file can be regenerated exactly:

    python3 samples/generate.py > samples/prices.csv
"""
import csv
import random
import sys
from datetime import datetime, timedelta, timezone

rng = random.Random(20261120)
END = datetime(2026, 11, 20, tzinfo=timezone.utc)
DAYS = 90

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
for r_index, (retailer, loyalty) in enumerate(RETAILERS):
    for p_index, (key, base, pack, titles) in enumerate(PRODUCTS):
        regular = max(10, base + rng.randint(-15, 15) - (20 if retailer == "aldi" else 0))
        cycle = rng.choice([14, 21, 28])
        phase = rng.randrange(cycle)
        rise_day = rng.randrange(30, 80) if rng.random() < 0.3 else None
        sku = f"{retailer[:2].upper()}{1000 + p_index}"
        for day in range(DAYS):
            date = END - timedelta(days=DAYS - 1 - day)
            if rise_day is not None and day == rise_day:
                regular += max(5, regular // 10)
            in_promo = (day + phase) % cycle < 5
            out_of_stock = rng.random() < 0.01
            for hour in (7, 19):
                price, was, promo = regular, "", ""
                if in_promo:
                    kind = (p_index + r_index) % 3
                    if kind == 0:
                        price = regular * 3 // 4
                        was, promo = str(regular), f"Was {money(regular)} Now {money(price)}"
                    elif kind == 1 and loyalty:
                        promo = f"{loyalty} {money(regular * 4 // 5)}"
                    else:
                        promo = f"2 for {money(regular * 2 * 85 // 100)}"
                observed = date.replace(hour=hour) + timedelta(minutes=rng.randrange(0, 20))
                writer.writerow([retailer, sku, titles[r_index],
                                 observed.strftime("%Y-%m-%dT%H:%M:%SZ"), price, was, promo,
                                 "false" if out_of_stock else "true", pack])

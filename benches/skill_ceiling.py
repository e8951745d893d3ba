#!/usr/bin/env python3
"""Where a backtest's Brier skill comes from, and how much telling
listings apart could give at most.

Reads the file `shelfwatch backtest --claims FILE` writes (one row per
scored claim) and prints:

- the model's Brier score and skill against the reference the report uses
  (the rate at which claims made on the training days came true);
- the same skill against the test period's own rate, known only in
  hindsight;
- two hindsight forecasters that state, for every claim, the rate at which
  the other claims of its listing (or of its listing and action) came true
  over the whole test period (leaving the claim itself out, so a listing
  with few claims does not state its own outcome back; the line after
  them includes it, an upper bound that small groups flatter). They cannot be built (they know the future), but their
  skill bounds what any confidence that only tells listings apart can reach:
  whatever the model has beyond them comes from timing, from knowing which
  days of a listing are risky;
- with `--by-listing`, each listing's claims, rate and mean stated
  confidence.

Usage:
    shelfwatch backtest --claims /tmp/claims.csv
    python3 benches/skill_ceiling.py /tmp/claims.csv

Standard library only. A figure with nothing to score prints as "-".
"""

import argparse
import csv
import sys
from collections import defaultdict


def read(path):
    claims = []
    with open(path, newline="") as f:
        for line, row in enumerate(csv.DictReader(f), start=2):
            try:
                came_true = {"true": 1.0, "false": 0.0}[row["came_true"]]
                claims.append(
                    {
                        "listing": row["listing_id"],
                        "action": row["action"],
                        "p": float(row["confidence"]),
                        "y": came_true,
                        "ref": float(row["reference"]),
                    }
                )
            except (KeyError, ValueError) as e:
                raise SystemExit(f"{path}:{line}: not a claims row ({e!r})")
    return claims


def listing_of(c):
    return c["listing"]


def listing_and_action(c):
    return (c["listing"], c["action"])


def brier(claims, stated):
    return sum((stated(c) - c["y"]) ** 2 for c in claims) / len(claims)


def skill(score, reference):
    return None if reference <= 0 else 1.0 - score / reference


def fmt(v, digits=3):
    return "-" if v is None else f"{v:.{digits}f}"


def group_rate(claims, key, fallback, leave_one_out=True):
    """A forecaster stating, for each claim, the rate at which the other
    claims of its group came true over the test period (leave one out, so
    a small group cannot state its own outcome back); `fallback` for a
    claim alone in its group."""
    sums = defaultdict(lambda: [0.0, 0])
    for c in claims:
        s = sums[key(c)]
        s[0] += c["y"]
        s[1] += 1

    def stated(c):
        came_true, n = sums[key(c)]
        if not leave_one_out:
            return came_true / n
        return fallback if n < 2 else (came_true - c["y"]) / (n - 1)

    return stated


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("claims", help="the CSV file of `backtest --claims`")
    parser.add_argument("--by-listing", action="store_true", help="a line per listing")
    args = parser.parse_args()
    claims = read(args.claims)
    if not claims:
        print("no scored claims: nothing to measure")
        return 0
    n = len(claims)
    rate = sum(c["y"] for c in claims) / n
    model = brier(claims, lambda c: c["p"])
    reference = brier(claims, lambda c: c["ref"])
    hindsight = brier(claims, lambda c: rate)
    by_listing = brier(claims, group_rate(claims, listing_of, rate))
    by_pair = brier(claims, group_rate(claims, listing_and_action, rate))
    # With each claim's own outcome in its group's rate: flattering where
    # groups are small.
    by_pair_in = brier(claims, group_rate(claims, listing_and_action, rate, leave_one_out=False))
    print(f"{n} claims, {rate:.3f} came true")
    print(f"model Brier {model:.4f}")
    print(f"  skill vs the training-days reference (the report's): {fmt(skill(model, reference))}")
    print(f"  skill vs the test period's own rate (hindsight):      {fmt(skill(model, hindsight))}")
    print("hindsight forecasters, skill vs the test period's own rate:")
    print(f"  each listing's test-period rate:              {fmt(skill(by_listing, hindsight))}")
    print(f"  each listing and action's test-period rate:   {fmt(skill(by_pair, hindsight))}")
    print(f"  the same, the claim's own outcome included:   {fmt(skill(by_pair_in, hindsight))}")
    if not args.by_listing:
        return 0
    print("\nlisting   claims  came true  mean stated  Brier")
    listings = defaultdict(list)
    for c in claims:
        listings[c["listing"]].append(c)
    for listing in sorted(listings, key=lambda k: (len(k), k)):
        cs = listings[listing]
        print(
            f"{listing:<9} {len(cs):<7} {sum(c['y'] for c in cs) / len(cs):<10.3f} "
            f"{sum(c['p'] for c in cs) / len(cs):<12.3f} {brier(cs, lambda c: c['p']):.4f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

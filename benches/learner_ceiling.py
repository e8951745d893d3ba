#!/usr/bin/env python3
"""How much Brier skill other learners reach on exactly the model's inputs.

The confidence models are ridge logistic regressions with an isotonic map
(docs/forecast.md). When a data set's skill stays short of a target, the
question is whether a different learner would find more in the same
features, or whether the features (the price history) do not hold it.
This script answers it on one backtest:

- it reads the days a model can learn from, with every feature the
  confidence models see and what came true (`backtest --features FILE`),
  and the claims the backtest scored (`backtest --claims FILE`);
- it walks forward as the backtest does: every 28 days from the first
  scored day, each learner is trained on the days whose horizon ended
  before the block, one model per action as shelfwatch trains them (buy_now
  days for buy_now claims, every other day for holds, wait-eligible days
  for waits), weighting each day by half for every 365 days of age;
- it states a probability for every scored claim, and prints the Brier
  skill against the same reference the report uses (the rate at which the
  claims made on the training days came true) and the expected calibration
  error over the report's ten bins, beside the model's own.

Learners: scikit-learn's logistic regression on standardised features
over a range of penalties, and gradient-boosted trees
(HistGradientBoostingClassifier) over a range of depths and leaf sizes.
The best setting of each is picked by looking at the test claims, so the
best row is an optimistic bound, not a figure a forecaster could reach.

Usage:
    pip install numpy pandas scikit-learn
    shelfwatch backtest --horizon 7 --json --claims /tmp/c.csv --features /tmp/f.csv > /tmp/r.json
    python3 benches/learner_ceiling.py /tmp/c.csv /tmp/f.csv --test-from "$(jq -r .test_from /tmp/r.json)"

Without --test-from the blocks start at the first scored claim. A set
with no scored claims prints a skill of "-".
"""

import argparse
import sys

REFIT_DAYS = 28
HALF_LIFE_DAYS = 365.0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("claims", help="file written by backtest --claims")
    ap.add_argument("features", help="file written by backtest --features")
    ap.add_argument("--horizon", type=int, default=7, help="the backtest's --horizon (default 7)")
    ap.add_argument("--test-from", help="the report's test_from (YYYY-MM-DD)")
    ap.add_argument("--quick", action="store_true", help="one setting per learner")
    args = ap.parse_args()
    try:
        import numpy as np
        import pandas as pd
        from sklearn.ensemble import HistGradientBoostingClassifier
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
    except ImportError as e:
        sys.exit(f"needs numpy, pandas and scikit-learn ({e}): pip install numpy pandas scikit-learn")

    claims = pd.read_csv(args.claims)
    days = pd.read_csv(args.features)
    fixed = ["listing_id", "day", "action", "came_true", "hold_came_true", "wait_eligible", "wait_came_true"]
    missing = [c for c in fixed if c not in days.columns]
    if missing:
        sys.exit(f"{args.features}: not a backtest --features file (no column {', '.join(missing)})")
    features = [c for c in days.columns if c not in fixed]
    if claims.empty:
        print("no scored claims: skill -")
        return
    for frame in (claims, days):
        frame["dayn"] = (pd.to_datetime(frame["day"]) - pd.Timestamp("1970-01-01")).dt.days
    start = (pd.Timestamp(args.test_from) - pd.Timestamp("1970-01-01")).days if args.test_from else claims.dayn.min()
    claims["block"] = (claims.dayn - start) // REFIT_DAYS
    claims = claims.join(days.set_index(["listing_id", "dayn"])[features], on=["listing_id", "dayn"])
    unmatched = int(claims[features[0]].isna().sum())
    if unmatched:
        sys.exit(f"{unmatched} claims have no row in {args.features}: were both written by one backtest run?")
    y = claims.came_true.astype(str).str.lower().isin(["true", "1"]).to_numpy(float)
    ref = np.mean((claims.reference.to_numpy() - y) ** 2)

    def skill(p):
        return 1.0 - np.mean((p - y) ** 2) / ref if ref > 0 else float("nan")

    def ece(p):
        # Ten bins of stated confidence, as the backtest report bins them.
        bins = np.minimum((p * 10).astype(int), 9)
        return sum(abs(p[bins == b].mean() - y[bins == b].mean()) * (bins == b).sum() for b in np.unique(bins)) / len(p)

    # Which training days teach which claim, and with which label.
    teaches = {
        "buy_now": (lambda d: d.action == "buy_now", "came_true"),
        "hold": (lambda d: d.action != "buy_now", "hold_came_true"),
        "wait": (lambda d: d.wait_eligible == 1, "wait_came_true"),
    }

    def walk(make, weight_arg):
        stated = np.full(len(claims), np.nan)
        for block, group in claims.groupby("block"):
            train = days[days.dayn + args.horizon < start + REFIT_DAYS * block]
            age = train.dayn.max() - train.dayn
            weight = 0.5 ** (age / HALF_LIFE_DAYS)
            for action, (rows, label) in teaches.items():
                mine = group.index[group.action == action]
                if len(mine) == 0:
                    continue
                sel = rows(train).to_numpy()
                t = train[sel]
                labels = t[label].astype(int)
                pos = claims.index.get_indexer(mine)
                if len(t) == 0 or labels.nunique() < 2:
                    # Nothing to tell apart: state the training rate.
                    stated[pos] = labels.mean() if len(t) else 0.5
                    continue
                model = make().fit(t[features], labels, **{weight_arg: weight[sel]})
                stated[pos] = model.predict_proba(claims.loc[mine, features])[:, 1]
        return stated

    logit = lambda c: (lambda: make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=5000)))
    trees = lambda depth, leaf, iters, rate: (
        lambda: HistGradientBoostingClassifier(
            max_iter=iters, learning_rate=rate, max_depth=depth, min_samples_leaf=leaf, l2_regularization=1.0
        )
    )
    settings = [("logistic", f"C={c}", logit(c), "logisticregression__sample_weight") for c in ((0.1,) if args.quick else (0.01, 0.03, 0.1, 0.3, 1.0))]
    grid = ((2, 80, 100, 0.03),) if args.quick else [(d, l, i, r) for d in (2, 3) for l in (20, 80) for i, r in ((100, 0.03), (300, 0.01))]
    settings += [("boosted trees", f"depth {d}, leaf {l}, {i} x {r}", trees(d, l, i, r), "sample_weight") for d, l, i, r in grid]

    model = claims.confidence.to_numpy()
    print(f"{len(claims)} scored claims, came true {y.mean():.3f}; reference Brier {ref:.4f}")
    print(f"{'learner':<15} {'setting':<26} {'Brier skill':>11} {'ECE':>6}  {'mean with the model':>19}")
    print(f"{'shelfwatch':<15} {'(the report)':<26} {skill(model):>11.3f} {ece(model):>6.3f}")
    best = {}
    for name, label, make, weight_arg in settings:
        p = walk(make, weight_arg)
        s = skill(p)
        print(f"{name:<15} {label:<26} {s:>11.3f} {ece(p):>6.3f}  {skill((p + model) / 2):>19.3f}", flush=True)
        best[name] = max(best.get(name, -np.inf), s)
    for name, s in best.items():
        print(f"best {name} (picked on the test claims): {s:.3f}")


if __name__ == "__main__":
    main()

"""The field's reference model, for benchmarks/predictions.py: BG/NBD + Gamma-Gamma fitted by
``lifetimes`` 0.11.3 on the same transactions the job sees.

    .bench-lifetimes/bin/python benchmarks/lifetimes_reference.py TRANSACTIONS.csv CUTOFF HORIZON OUT.csv

Runs in its own environment (conf/bench/lifetimes.txt: lifetimes predates numpy 2 and pandas 2),
so it imports nothing of the project. TRANSACTIONS.csv has customer_id, date (YYYY-MM-DD) and
amount, all before CUTOFF (YYYY-MM-DD). Writes one row per customer: customer_id, p_purchase,
expected_purchases, expected_spend.

Time is in days, as the job counts it: a customer's age T is the days from the first purchase to
the cutoff, purchases are distinct purchase days. lifetimes 0.11.3 has no conditional
P(at least one purchase in t), so it is written from the model's own pieces: a customer alive at T
makes no purchase in the next t days with probability ((alpha + T) / (alpha + T + t)) ** (r + x),
since BG/NBD drops customers only just after a purchase; so
P(any) = P(alive) * (1 - that), with lifetimes' own P(alive) and parameters.
"""

from __future__ import annotations

import sys

import pandas as pd
from lifetimes import BetaGeoFitter, GammaGammaFitter
from lifetimes.utils import summary_data_from_transaction_data


def main(path: str, cutoff: str, horizon: int, out: str) -> int:
    transactions = pd.read_csv(path, dtype={"customer_id": str}, parse_dates=["date"])
    # lifetimes counts T up to observation_period_end inclusive: the day before the cutoff,
    # plus one, is the job's "days before the cutoff".
    end = pd.Timestamp(cutoff) - pd.Timedelta(days=1)
    summary = summary_data_from_transaction_data(
        transactions, "customer_id", "date", monetary_value_col="amount", observation_period_end=end, freq="D")
    summary["T"] = summary["T"] + 1
    bgf = BetaGeoFitter(penalizer_coef=0.0)
    bgf.fit(summary["frequency"], summary["recency"], summary["T"])
    repeaters = summary[(summary["frequency"] > 0) & (summary["monetary_value"] > 0)]
    ggf = GammaGammaFitter(penalizer_coef=0.0)
    ggf.fit(repeaters["frequency"], repeaters["monetary_value"])
    x, tx, age = summary["frequency"], summary["recency"], summary["T"]
    expected = bgf.conditional_expected_number_of_purchases_up_to_time(horizon, x, tx, age)
    alive = bgf.conditional_probability_alive(x, tx, age)
    r, alpha = bgf.params_["r"], bgf.params_["alpha"]
    stay = ((alpha + age) / (alpha + age + horizon)) ** (r + x)
    per_purchase = ggf.conditional_expected_average_profit(x, summary["monetary_value"].clip(lower=0))
    result = pd.DataFrame({
        "customer_id": summary.index,
        "p_purchase": (alive * (1 - stay)).to_numpy(),
        "expected_purchases": expected.to_numpy(),
        "expected_spend": (expected * per_purchase).to_numpy(),
    })
    result.to_csv(out, index=False)
    print(f"lifetimes: r={r:.4f} alpha={alpha:.4f} a={bgf.params_['a']:.4f} b={bgf.params_['b']:.4f}; "
          f"gamma-gamma {dict((k, round(v, 4)) for k, v in ggf.params_.items())}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]))

"""Predictions on a real purchase log, against the field's reference model.

    make bench-predictions [PREDICT_CUTOFFS=C1,C2,...]   (default: CUTOFFS, monthly)
    python benchmarks/predictions.py --cutoffs C1,C2 [--horizon H] [--lifetimes-python PY]

The log is CDNOW's (Fader, Hardie and Lee's data set: 69,659 purchases of 23,570 customers,
1997-01-01 to 1998-06-30), as shipped inside the ``lifetimes`` package; it is not part of this
project, nor of its tests. For each cutoff C the job sees only the purchases before C:

    ./spark-submit.sh jobs/segment.py --input-kind transactions --reference-date C --predict-days H

(so its own backtest and model choice use nothing after C), and ``lifetimes`` fits BG/NBD +
Gamma-Gamma on the same rows (benchmarks/lifetimes_reference.py, in .bench-lifetimes, its own
environment). Both are then scored on what the log says happened in [C, C + H): AUC of
``p_purchase`` for buying at all, the share of the period's spend bought by the top 10% by
``expected_spend``, and the predicted against the actual totals of purchase days and spend, over
the customers both predicted. Replaces the section "Predictions on a real purchase log" of
BENCHMARKS.md; raw numbers go to benchmarks/results/predictions-cdnow.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from run import commit, empty_job, job_command, machine, measured_run, replace_section  # noqa: E402

HEADING = "## Predictions on a real purchase log"
# Every month from the first with two horizons of history to the last with a horizon after it: the
# 90-day totals move with the calendar (the holiday quarter), so two cutoffs say little about bias.
CUTOFFS = ("1997-07-01,1997-08-01,1997-09-01,1997-10-01,1997-11-01,1997-12-01,"
           "1998-01-01,1998-02-01,1998-03-01,1998-04-01")
LIFETIMES_PYTHON = ROOT / ".bench-lifetimes" / "bin" / "python"
REFERENCE = "lifetimes BG/NBD + GG"  # the reference model's name in the tables


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cutoffs", default=CUTOFFS)
    parser.add_argument("--horizon", type=int, default=90)
    parser.add_argument("--lifetimes-python", default=str(LIFETIMES_PYTHON))
    parser.add_argument("--work", default=str(ROOT / "benchmarks" / "data" / "cdnow"))
    parser.add_argument("--markdown", default=str(ROOT / "BENCHMARKS.md"))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a config override passed to the job (repeatable), e.g. predict.model=gbt")
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    log = read_cdnow(Path(args.lifetimes_python))
    # The machine's yardstick: run times here move between days as much as between commits.
    empty_seconds, _ = measured_run(empty_job(), work / "empty.log", "the empty job")
    results = []
    for cutoff in args.cutoffs.split(","):
        result = check_cutoff(log, datetime.date.fromisoformat(cutoff), args.horizon, work, args.lifetimes_python,
                              args.set)
        results.append(result)
        print(json.dumps(result, indent=1), flush=True)
    report = {"log": "CDNOW master (lifetimes 0.11.3 datasets/CDNOW_master.txt)", "horizon_days": args.horizon,
              "rows": int(len(log)), "customers": int(log["customer_id"].nunique()),
              "first": str(log["date"].min().date()), "last": str(log["date"].max().date()),
              "cutoffs": results, "empty_job_seconds": round(empty_seconds, 1), "machine": machine(),
              "commit": commit()}
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "predictions-cdnow.json").write_text(json.dumps(report, indent=1))
    replace_section(Path(args.markdown), HEADING, render_section(report), report["machine"])
    print(f"wrote {args.markdown}")
    return 0


def read_cdnow(python: Path) -> pd.DataFrame:
    """The log from the lifetimes package of that environment: customer_id, date, amount."""
    if not python.exists():
        raise SystemExit(f"error: no {python}: make bench-predictions creates it (conf/bench/lifetimes.txt)")
    where = subprocess.run(
        [str(python), "-c", "import lifetimes.datasets as d, os; print(os.path.dirname(d.__file__))"],
        capture_output=True, text=True, check=True).stdout.strip()
    log = pd.read_csv(Path(where) / "CDNOW_master.txt", sep=r"\s+", dtype={"customer_id": int, "date": str})
    return pd.DataFrame({"customer_id": log["customer_id"], "date": pd.to_datetime(log["date"], format="%Y%m%d"),
                         "amount": log["dollar_value"].astype(float)})


def check_cutoff(log: pd.DataFrame, cutoff: datetime.date, horizon: int, work: Path, python: str,
                 overrides: list[str]) -> dict:
    start, end = pd.Timestamp(cutoff), pd.Timestamp(cutoff + datetime.timedelta(days=horizon))
    seen = work / f"before-{cutoff}.csv"
    before = log[log["date"] < start]
    before.assign(date=before["date"].dt.strftime("%Y-%m-%d")).to_csv(seen, index=False)
    after = log[(log["date"] >= start) & (log["date"] < end)]
    days = after.groupby(["customer_id", "date"], as_index=False)["amount"].sum()
    actual = days.groupby("customer_id").agg(actual_purchases=("date", "size"), actual_spend=("amount", "sum"))

    job, seconds, peak, manifest = run_job(seen, cutoff, horizon, work, overrides)
    reference = run_lifetimes(python, seen, cutoff, horizon, work)
    both = job.merge(reference, on="customer_id", suffixes=("_job", "_lifetimes"))
    both = both.join(actual, on="customer_id").fillna({"actual_purchases": 0, "actual_spend": 0.0})
    predictions = manifest["predictions"]
    return {
        "cutoff": str(cutoff), "horizon_days": horizon, "rows_before": int(len(before)),
        "customers_before": int(before["customer_id"].nunique()), "customers_job": int(len(job)),
        "customers_lifetimes": int(len(reference)), "customers_compared": int(len(both)),
        "job_seconds": round(seconds, 1), "job_peak_bytes": peak, "job_model": predictions["model"],
        "job_decided_by": predictions["decided_by"], "job_supervised": predictions["supervised"],
        "job": measures(both, "_job"), "lifetimes": measures(both, "_lifetimes"),
    }


def run_job(seen: Path, cutoff: datetime.date, horizon: int, work: Path, overrides: list[str]):
    out = work / f"out-{cutoff}"
    shutil.rmtree(out, ignore_errors=True)  # a first run, as in run.py
    settings = [arg for item in overrides for arg in ("--set", item)]
    seconds, peak = measured_run(
        job_command(seen, out, ["--input-format", "csv", "--input-kind", "transactions", "--date-col", "date",
                                "--amount-col", "amount", "--reference-date", str(cutoff),
                                "--predict-days", str(horizon), *settings]),
        work / f"job-{cutoff}.log")
    labels = pd.read_parquet(out / "labels", columns=["customer_id", "p_purchase", "expected_purchases",
                                                      "expected_spend"])
    labels["customer_id"] = labels["customer_id"].astype(int)
    return labels, seconds, peak.peak, json.loads((out / "manifest.json").read_text())


def run_lifetimes(python: str, seen: Path, cutoff: datetime.date, horizon: int, work: Path) -> pd.DataFrame:
    out = work / f"lifetimes-{cutoff}.csv"
    subprocess.run([python, str(ROOT / "benchmarks" / "lifetimes_reference.py"), str(seen), str(cutoff),
                    str(horizon), str(out)], check=True)
    reference = pd.read_csv(out)
    reference["customer_id"] = reference["customer_id"].astype(int)
    return reference


def measures(both: pd.DataFrame, suffix: str) -> dict:
    from sklearn.metrics import roc_auc_score

    p, spend = both[f"p_purchase{suffix}"], both[f"expected_spend{suffix}"]
    top = both.loc[spend.sort_values(ascending=False, kind="stable").index[: int(np.ceil(0.1 * len(both)))]]
    actual_n, actual_s = float(both["actual_purchases"].sum()), float(both["actual_spend"].sum())
    predicted_n, predicted_s = float(both[f"expected_purchases{suffix}"].sum()), float(spend.sum())
    return {
        "auc": round(float(roc_auc_score(both["actual_purchases"] > 0, p)), 4),
        "top_decile_spend_share": round(float(top["actual_spend"].sum()) / actual_s, 4),
        "predicted_purchases": round(predicted_n, 1), "actual_purchases": actual_n,
        "purchases_error": round(predicted_n / actual_n - 1, 4),
        "predicted_spend": round(predicted_s, 1), "actual_spend": round(actual_s, 1),
        "spend_error": round(predicted_s / actual_s - 1, 4),
    }


def render_section(report: dict) -> str:
    lines = [
        HEADING, "",
        f"Produced by `make bench-predictions` (benchmarks/predictions.py) at commit {report['commit']}: "
        f"{report['log']}, {report['rows']:,} purchases of {report['customers']:,} customers from "
        f"{report['first']} to {report['last']}, not part of the project or its tests. For each cutoff the "
        f"job saw only the purchases before it (`--reference-date CUTOFF --predict-days "
        f"{report['horizon_days']}`, the default config otherwise) and `lifetimes` 0.11.3 fitted BG/NBD + "
        "Gamma-Gamma on the same rows; both are scored on what happened in the next "
        f"{report['horizon_days']} days, over the customers both predicted. An empty Spark job "
        f"(`benchmarks/empty_job.py`) took {report['empty_job_seconds']:.1f} s in the same bench.", "",
        "| cutoff | model | AUC | top-decile spend share | purchases: predicted / actual (miss) "
        "| spend: predicted / actual (miss) |",
        "|---|---|---|---|---|---|",
    ]
    for c in report["cutoffs"]:
        for name, label in (("job", f"job ({c['job_model']})"), ("lifetimes", REFERENCE)):
            m = c[name]
            lines.append(
                f"| {c['cutoff']} | {label} | {m['auc']:.3f} | {m['top_decile_spend_share']:.3f} | "
                f"{m['predicted_purchases']:,.0f} / {m['actual_purchases']:,.0f} ({m['purchases_error']:+.1%}) | "
                f"{m['predicted_spend']:,.0f} / {m['actual_spend']:,.0f} ({m['spend_error']:+.1%}) |")
    lines.append("")
    for c in report["cutoffs"]:
        lines.append(
            f"- {c['cutoff']}: {c['rows_before']:,} purchases of {c['customers_before']:,} customers before it; "
            f"the job labelled {c['customers_job']:,} (the others had a net amount of zero or less), "
            f"{c['customers_compared']:,} compared. It chose `{c['job_model']}` ({c['job_decided_by']}; "
            f"supervised model: {c['job_supervised']}), in {c['job_seconds']:.0f} s for the whole run, "
            f"peak {c['job_peak_bytes'] / 2**30:.2f} GiB.")
    if len(report["cutoffs"]) > 2:
        lines += ["", *miss_summary(report["cutoffs"])]
    return "\n".join(lines) + "\n\n"


def miss_summary(cutoffs: list[dict]) -> list[str]:
    """Across the cutoffs, each model's mean miss of the totals (its bias) and mean absolute miss."""
    lines = [f"Across the {len(cutoffs)} cutoffs, mean miss (bias) and mean absolute miss of the totals:", ""]
    for name, label in (("job", "job"), ("lifetimes", REFERENCE)):
        parts = []
        for key, what in (("purchases_error", "purchases"), ("spend_error", "spend")):
            errors = np.array([c[name][key] for c in cutoffs])
            parts.append(f"{what} {errors.mean():+.1%} (absolute {np.abs(errors).mean():.1%}, "
                         f"{(np.abs(errors) <= 0.10).sum()} of {len(errors)} within 10%)")
        lines.append(f"- {label}: {'; '.join(parts)}.")
    return lines


if __name__ == "__main__":
    sys.exit(main())

"""The RFM path at real size: the job on synthetic transactions, timed end to end.

    make bench-transactions [TX_ROWS=1000000] [TX_CUSTOMERS=100000] [REPEATS=3] [PREDICT_DAYS=90]
    python benchmarks/transactions.py --rows N --customers M [--repeats R] [--predict-days H]

Generates N transactions of about M customers once with ``jobs/generate.py --kind
transactions`` (kept under benchmarks/data/), then runs ``jobs/segment.py
--input-kind transactions`` REPEATS times through ``spark-submit.sh``, each as its own
process tree, recording wall seconds, the peak summed PSS of the tree (as
benchmarks/run.py does), the stage timings and what the manifest says. Replaces the
section "Transactions: N rows of M customers" of BENCHMARKS.md; raw numbers go to
benchmarks/results/transactions-N.json.

With ``--predict-days H`` every repeat runs the job twice, without and with ``--predict-days H``,
alternating, and the section "Predictions: N transactions" says what the prediction stage costs
beside the segmentation job (results in benchmarks/results/predictions-N.json).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from run import commit, job_command, machine, measured_run, replace_section  # noqa: E402

JOB_ARGS = ["--input-kind", "transactions", "--order-col", "invoice"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--work", default=str(ROOT / "benchmarks" / "data"))
    parser.add_argument("--markdown", default=str(ROOT / "BENCHMARKS.md"))
    parser.add_argument("--predict-days", type=int, default=0)
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    data = generate(args.rows, args.customers, work)
    if args.predict_days:
        return bench_predictions(args, data, work)
    runs = []
    for repeat in range(args.repeats):
        run = run_job(data, work)
        runs.append(run)
        print(f"transactions run {repeat + 1}: {run['seconds']:.1f} s, "
              f"peak {run['peak_rss_bytes'] / 2**30:.2f} GiB, k={run['chosen_k']}", flush=True)
    report = {"rows": args.rows, "customers": args.customers, "machine": machine(), "runs": runs,
              "commit": commit(), "job_args": " ".join(JOB_ARGS)}
    results = ROOT / "benchmarks" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / f"transactions-{args.rows}.json").write_text(json.dumps(report, indent=1))
    write_markdown(Path(args.markdown), report)
    print(f"wrote {args.markdown}")
    return 0


def generate(rows: int, customers: int, work: Path) -> Path:
    data = work / f"transactions-{rows}-{customers}"
    if (data / "_SUCCESS").exists():
        return data
    started = time.monotonic()
    subprocess.run(
        [str(ROOT / "spark-submit.sh"), "jobs/generate.py", "--kind", "transactions", "--rows", str(rows),
         "--customers", str(customers), "--output", str(data), "--overwrite"],
        cwd=ROOT, check=True,
    )
    print(f"generated {rows} transactions in {time.monotonic() - started:.0f} s", flush=True)
    return data


def bench_predictions(args, data: Path, work: Path) -> int:
    extra = ["--predict-days", str(args.predict_days)]
    runs: dict[str, list[dict]] = {"segmentation": [], "with predictions": []}
    for repeat in range(args.repeats):
        order = list(runs) if repeat % 2 == 0 else list(runs)[::-1]
        for name in order:
            run = run_job(data, work, extra if name == "with predictions" else [])
            runs[name].append(run)
            print(f"{name} run {repeat + 1}: {run['seconds']:.1f} s, peak {run['peak_rss_bytes'] / 2**30:.2f} GiB",
                  flush=True)
    report = {"rows": args.rows, "customers": args.customers, "machine": machine(), "runs": runs,
              "commit": commit(), "job_args": " ".join(JOB_ARGS + extra), "predict_days": args.predict_days}
    results = ROOT / "benchmarks" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / f"predictions-{args.rows}.json").write_text(json.dumps(report, indent=1))
    heading = f"## Predictions: {args.rows:,} transactions"
    replace_section(Path(args.markdown), heading, render_predictions(heading, report), report["machine"])
    print(f"wrote {args.markdown}")
    return 0


def render_predictions(heading: str, report: dict) -> str:
    plain, predicted = report["runs"]["segmentation"], report["runs"]["with predictions"]
    last = predicted[-1]
    facts = last["predictions"]

    def median(runs, key):
        return statistics.median(r[key] for r in runs)

    lines = [
        heading, "",
        f"Produced by `make bench-transactions TX_ROWS={report['rows']} TX_CUSTOMERS={report['customers']} "
        f"PREDICT_DAYS={report['predict_days']}` (benchmarks/transactions.py) at commit {report['commit']}: "
        f"{len(predicted)} runs each of `./spark-submit.sh jobs/segment.py {report['job_args']}` and of the same "
        "without `--predict-days`, alternating, the default config otherwise.", "",
        "| | wall seconds (median) | peak memory (PSS, all processes, max) | stage `predict` seconds (median) |",
        "|---|---|---|---|",
        f"| segmentation only | {median(plain, 'seconds'):.1f} | {max(r['peak_rss_bytes'] for r in plain) / 2**30:.2f} GiB | |",
        f"| with predictions | {median(predicted, 'seconds'):.1f} | "
        f"{max(r['peak_rss_bytes'] for r in predicted) / 2**30:.2f} GiB | "
        f"{statistics.median(r['timings']['predict'] for r in predicted):.1f} |", "",
        f"The last run predicted for {facts['customers']:,} customers ({facts['customers_at_cutoff']:,} known at "
        f"the backtest's cutoff {facts['cutoff']}); supervised model: {facts['supervised']}; chosen: "
        f"`{facts['model']}` ({facts['decided_by']}).", "",
    ]
    return "\n".join(lines) + "\n"


def run_job(data: Path, work: Path, extra: list[str] = ()) -> dict:
    out = work / "out-transactions"
    seconds, peak = measured_run(
        job_command(data, out, [*JOB_ARGS, *extra]), work / "transactions.log")
    manifest = json.loads((out / "manifest.json").read_text())
    return {
        "seconds": round(seconds, 2), "peak_rss_bytes": peak.peak, "chosen_k": manifest["chosen_k"],
        "timings": manifest["timings"], "transactions": manifest["transactions"],
        "labelled_rows": manifest["labelled_rows"], "dropped_rows": manifest["dropped_rows"],
        "segments": manifest["segments"], "predictions": manifest.get("predictions"),
    }


def render_section(report: dict) -> str:
    runs = report["runs"]
    last = runs[-1]
    facts = last["transactions"]
    median = statistics.median(r["seconds"] for r in runs)
    peak = max(r["peak_rss_bytes"] for r in runs)
    stages = list(last["timings"])
    lines = [
        f"## Transactions: {report['rows']:,} rows of {report['customers']:,} customers", "",
        f"Produced by `make bench-transactions` (benchmarks/transactions.py): {len(runs)} runs of "
        f"`./spark-submit.sh jobs/segment.py {report['job_args']}` at commit {report['commit']}, "
        "the default config otherwise (local[*], RFM features recency_days, log1p(frequency), "
        "log1p(monetary)).", "",
        "| | wall seconds | peak memory (PSS, all processes) |",
        "|---|---|---|",
        *[f"| run {i + 1} | {r['seconds']:.1f} | {r['peak_rss_bytes'] / 2**30:.2f} GiB |" for i, r in enumerate(runs)],
        f"| **median / max** | **{median:.1f}** | **{peak / 2**30:.2f} GiB** |", "",
        "Stage seconds (median of the runs): "
        + ", ".join(f"{s} {statistics.median(r['timings'][s] for r in runs):.1f}" for s in stages) + ".", "",
        f"The last run read {facts['transactions']:,} transactions "
        f"(dropped: {facts['dropped_transactions'] or 'none'}) of {facts['customers']:,} customers; "
        f"{facts['dropped_customers_net_not_positive']:,} customers had a net amount of zero or less and were "
        f"dropped; reference date {facts['reference_date']}. It labelled {last['labelled_rows']:,} customers "
        f"in K = {last['chosen_k']} segments: "
        + ", ".join(f"{s['segment_name']} ({s['fitted_rows']:,} fit rows)" for s in last["segments"]) + ".",
        "",
    ]
    return "\n".join(lines) + "\n"


def write_markdown(path: Path, report: dict) -> None:
    heading = f"## Transactions: {report['rows']:,} rows"
    replace_section(path, heading, render_section(report), report["machine"])


if __name__ == "__main__":
    sys.exit(main())

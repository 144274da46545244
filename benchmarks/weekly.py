"""What a week's second run costs: the job on period 2 of N customers carrying on the lineage of
period 1 (matching, migrations join, drift), against the same run starting a new lineage, and the
same carried run published as Delta Lake tables (``--output-format delta``).

    make bench-weekly [ROWS=10000000] [REPEATS=2]
    python benchmarks/weekly.py --rows N [--repeats R]

Generates periods 1 and 2 of N customers once with ``jobs/generate.py [--period 2]`` (kept under
benchmarks/data/), publishes period 1 once, then runs period 2 REPEATS times each way, alternating:
``--previous <period 1's output>``, ``--previous none`` and, with period 1 also published as Delta,
``--output-format delta --previous <that output>``, each through ``spark-submit.sh`` as its
own process tree (wall seconds and peak summed PSS as benchmarks/run.py records them, and the
manifest's stage timings). Replaces the section "Weekly runs: N customers" of BENCHMARKS.md; raw
numbers go to benchmarks/results/weekly-N.json.
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

WAYS = ("carried", "new lineage", "carried, delta")
DELTA = ["--output-format", "delta"]
STAGES = ("migrations", "drift", "fit", "label", "profile")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--work", default=str(ROOT / "benchmarks" / "data"))
    parser.add_argument("--markdown", default=str(ROOT / "BENCHMARKS.md"))
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    periods = {p: generate(args.rows, p, work) for p in (1, 2)}
    week1, week1_delta = work / "out-weekly-1", work / "out-weekly-1-delta"
    run_job(periods[1], week1, ["--previous", "none", "--no-report"], work)
    run_job(periods[1], week1_delta, ["--previous", "none", "--no-report", *DELTA], work)
    runs: dict[str, list[dict]] = {way: [] for way in WAYS}
    for repeat in range(args.repeats):
        for way in (WAYS if repeat % 2 == 0 else WAYS[::-1]):
            previous = {"carried": str(week1), "new lineage": "none", "carried, delta": str(week1_delta)}[way]
            delta = way.endswith("delta")
            result = run_job(periods[2], work / ("out-weekly-2-delta" if delta else "out-weekly-2"),
                             ["--previous", previous, "--no-report", *(DELTA if delta else [])], work)
            runs[way].append(result)
            print(f"{way} run {repeat + 1}: {result['seconds']:.1f} s, peak {result['peak_rss_bytes'] / 2**30:.2f} GiB, "
                  f"migrations {result['timings'].get('migrations', 0):.1f} s", flush=True)
    report = {"rows": args.rows, "machine": machine(), "runs": runs, "commit": commit()}
    results = ROOT / "benchmarks" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / f"weekly-{args.rows}.json").write_text(json.dumps(report, indent=1))
    replace_section(Path(args.markdown), f"## Weekly runs: {args.rows:,} customers", render_section(report),
                    report["machine"])
    print(f"wrote {args.markdown}")
    return 0


def generate(rows: int, period: int, work: Path) -> Path:
    data = work / f"weekly-{rows}-period{period}"
    if (data / "_SUCCESS").exists():
        return data
    started = time.monotonic()
    subprocess.run([str(ROOT / "spark-submit.sh"), "jobs/generate.py", "--rows", str(rows), "--period", str(period),
                    "--output", str(data), "--overwrite"], cwd=ROOT, check=True)
    print(f"generated period {period} of {rows} customers in {time.monotonic() - started:.0f} s", flush=True)
    return data


def run_job(data: Path, out: Path, job_args: list[str], work: Path) -> dict:
    seconds, peak = measured_run(
        job_command(data, out, ["--id-col", "customer_id", *job_args]), work / "weekly.log")
    if (out / "manifest.json").exists():
        manifest = json.loads((out / "manifest.json").read_text())
    else:  # a Delta output: the last run its runs table names
        sys.path.insert(0, str(ROOT))
        from segmentation.delta import latest_run

        manifest = json.loads(latest_run(str(out))["manifest"])
    return {"seconds": round(seconds, 2), "peak_rss_bytes": peak.peak, "timings": manifest["timings"],
            "chosen_k": manifest["chosen_k"], "migrations": manifest["migrations"],
            "drifted": (manifest["drift"] or {}).get("drifted"), "labelled_rows": manifest["labelled_rows"]}


def render_section(report: dict) -> str:
    runs = report["runs"]
    median = {way: statistics.median(r["seconds"] for r in runs[way]) for way in WAYS}
    peak = {way: max(r["peak_rss_bytes"] for r in runs[way]) for way in WAYS}
    stage = {way: {s: statistics.median(r["timings"].get(s, 0.0) for r in runs[way]) for s in STAGES} for way in WAYS}
    facts = runs["carried"][-1]["migrations"]
    lines = [
        f"## Weekly runs: {report['rows']:,} customers", "",
        f"Produced by `make bench-weekly ROWS={report['rows']}` (benchmarks/weekly.py) at commit {report['commit']}: "
        "period 2 of the generated customers (10% moved, 5% left, 5% new), segmented with `--no-report`, "
        f"{len(runs['carried'])} runs each way, alternating; \"carried\" reads period 1's published run "
        "(`--previous PATH`): it matches the segments, joins the two runs' labels for the migrations and "
        "measures drift; \"new lineage\" is `--previous none`.", "",
        "| | wall seconds (median) | peak memory (PSS) | " + " | ".join(f"{s} s" for s in STAGES) + " |",
        "|---|---|---|" + "---|" * len(STAGES),
        *[f"| {way} | {median[way]:.1f} | {peak[way] / 2**30:.2f} GiB | "
          + " | ".join(f"{stage[way][s]:.1f}" for s in STAGES) + " |" for way in WAYS],
        "",
        f"Carrying the lineage cost {median['carried'] - median['new lineage']:+.1f} s of wall time; the "
        f"migrations stage (one join of {facts['previous_customers']:,} with {facts['customers']:,} ids) took "
        f"{stage['carried']['migrations']:.1f} s and drift {stage['carried']['drift']:.2f} s (no pass over rows). "
        f"Stability {facts['stability']:.1%}; {facts['new_customers']:,} new, {facts['gone_customers']:,} gone; "
        f"drifted: {runs['carried'][-1]['drifted']}. Publishing the carried run as Delta tables (Spark writes "
        f"the same Parquet; delta-rs commits the files of each table, then the runs row) cost "
        f"{median['carried, delta'] - median['carried']:+.1f} s against the plain layout's swap.", "",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())

"""Each lever of the job, measured: one setting changed at a time against the defaults.

    python benchmarks/levers.py --rows N [--repeats 1] [--only NAME,...]

Runs the job on the benchmark data for N rows once per variant (after one
warm-up run), and replaces the "Levers at N rows" section of BENCHMARKS.md with
the wall seconds, the sweep's seconds, the worst per-K gap of the WSSSE per row
to scikit-learn's best of 10, the chosen K and the sample's relative error.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import ROOT, best_of_n, commit, generate, run_system  # noqa: E402

VARIANTS = {
    "defaults": [],
    "sample 25,000 rows": ["--set", "elbow.sample_rows=25000"],
    "sample 100,000 rows": ["--set", "elbow.sample_rows=100000"],
    "sample 200,000 rows": ["--set", "elbow.sample_rows=200000"],
    "sample 1,000,000 rows": ["--set", "elbow.sample_rows=1000000"],
    "1 seed per K": ["--set", "elbow.seeds_per_k=1"],
    "2 seeds per K": ["--set", "elbow.seeds_per_k=2"],
    "4 seeds per K": ["--set", "elbow.seeds_per_k=4"],
    "fits one at a time": ["--set", "elbow.parallelism=1"],
    "2 fits at a time": ["--set", "elbow.parallelism=2"],
    "9 fits at a time": ["--set", "elbow.parallelism=9"],
    "random initialisation": ["--set", "elbow.init_mode=random"],
    "random initialisation and 4 seeds per K": ["--set", "elbow.init_mode=random", "--set", "elbow.seeds_per_k=4"],
    "5 k-means-parallel initialisation steps": ["--set", "elbow.init_steps=5"],
    "no repair rounds": ["--set", "elbow.repair_rounds=0"],
    "FIFO scheduler": ["--set", "spark.properties.spark.scheduler.mode=FIFO"],
    "no adaptive query execution": ["--set", "spark.properties.spark.sql.adaptive.enabled=false"],
    "all rows (no sample)": ["--set", "elbow.sample_rows=null"],
    # The cost model: the K range and the number of features.
    "K = 2..6": ["--k-max", "6"],
    "K = 2..15": ["--k-max", "15"],
    "K = 2..20": ["--k-max", "20"],
    "2 features": ["--features", "annual_income,spending"],
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--only", default="", help="comma-separated variant names")
    parser.add_argument("--work", default=str(ROOT / "benchmarks" / "data"))
    parser.add_argument("--markdown", default=str(ROOT / "BENCHMARKS.md"))
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    data = generate(args.rows, work)
    reference = best_of_n(data, work, args.rows)
    best = [w / reference["rows"] for w in reference["wssse"]]
    names = [n for n in args.only.split(",") if n] or list(VARIANTS)
    run_system("job", data, work, [])  # warm the page cache and the JIT-free paths alike
    out = ROOT / "benchmarks" / "results" / f"levers-{args.rows}.json"
    results = json.loads(out.read_text()) if out.exists() else {}  # --only adds to earlier variants
    for name in names:
        runs = [run_system("job", data, work, VARIANTS[name]) for _ in range(args.repeats)]
        last = runs[-1]
        per_row = [w / n for w, n in zip(last["wssse"], last["fit_rows"])]
        comparable = last["k"] == reference["k"] and "--features" not in VARIANTS[name]
        gaps = [j / b - 1 for j, b in zip(per_row, best)] if comparable else None
        results[name] = {
            "seconds": statistics.median(r["seconds"] for r in runs),
            "sweep": statistics.median(r["timings"]["sweep"] for r in runs),
            "worst_gap": max(gaps) if gaps else None,
            "gaps": gaps,
            "k_range": [last["k"][0], last["k"][-1]],
            "commit": commit(),
            "chosen_k": last["chosen_k"],
            "fit_rows": last["fit_rows"][0],
            "sample_error": (last.get("fit_quality") or {}).get("relative_error"),
            "peak_rss_bytes": max(r["peak_rss_bytes"] for r in runs),
        }
        r = results[name]
        gap = "n/a" if r["worst_gap"] is None else f"{r['worst_gap']:+.1%}"
        print(f"{name}: {r['seconds']:.1f} s (sweep {r['sweep']:.1f} s), worst gap {gap}, "
              f"k={r['chosen_k']}", flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    write_section(Path(args.markdown), args.rows, results, reference["k"])
    return 0


def write_section(path: Path, rows: int, results: dict, ks: list[int]) -> None:
    title = f"## Levers at {rows:,} rows"
    lines = [title, "",
             f"`python benchmarks/levers.py --rows {rows}`: the job with one setting changed at a time. "
             "The gap is the job's WSSSE per row over scikit-learn's best of 10, at the worst K "
             f"(per K, {ks[0]}..{ks[-1]}, in the JSON results).", "",
             "| variant | wall s | sweep s | worst gap | chosen K | fit rows "
             "| sample's relative error | peak GiB | commit |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, r in sorted(results.items(), key=lambda item: list(VARIANTS).index(item[0])
                          if item[0] in VARIANTS else len(VARIANTS)):
        error = "n/a" if r["sample_error"] is None else f"{r['sample_error']:+.2%}"
        gap = "n/a" if r.get("worst_gap") is None else f"{r['worst_gap']:+.1%}"
        lines.append(f"| {name} | {r['seconds']:.1f} | {r['sweep']:.1f} | {gap} | "
                     f"{r['chosen_k']} | {r['fit_rows']:,} | {error} | {r['peak_rss_bytes'] / 2**30:.2f} | "
                     f"{r.get('commit', 'aa57564 (before 085b5dd)')} |")
    section = "\n".join(lines) + "\n\n"
    text = path.read_text() if path.exists() else "# Benchmarks\n\n"
    pattern = re.compile(rf"^{re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


if __name__ == "__main__":
    sys.exit(main())

"""How well each K rule finds the planted number of groups: the job on the K suite.

    make bench-k [K_SEEDS=2026] [K_ROWS=20000]
    python benchmarks/k_suite.py [--seeds 2026,7] [--rows 20000] [--gmm]

For every table of ``segmentation.planted.suite(seed)`` (separated, overlapping and
structureless tables with a known K), plus the Mall customers (5, tests/data) and the demo
customers of ``jobs/generate.py`` (5 planted), runs the real job in-process
(``run_segmentation`` on one local[2] session, report off) and reads back what its sweep
recorded in the manifest: every K's WSSSE and silhouette. Every rule of
``segmentation.k_selection`` is then applied to those same signals, so the rules are compared
on identical sweeps; the job's own choice (the default rule) is checked against them. With
``--gmm`` each table is also run with ``--algorithm gmm`` and its lowest-BIC K recorded.

Replaces the section "K selection (suite seeds S)" of BENCHMARKS.md ("K selection with gmm
(...)" with --gmm); raw results go to benchmarks/results/k-suite.json (k-suite-gmm.json).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

from run import commit, machine, replace_section  # noqa: E402



def heading(seeds: str, gmm: bool) -> str:
    """The section's heading: one section per suite and algorithm set, so a --gmm run on one
    suite does not replace the k-means run on two."""
    return f"## K selection {'with gmm ' if gmm else ''}(suite seeds {seeds})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="2026", help="comma-separated suite seeds")
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--gmm", action="store_true", help="also run algorithm gmm (K by BIC) on every table")
    parser.add_argument("--work", default=str(ROOT / "benchmarks" / "data" / "k_suite"))
    parser.add_argument("--markdown", default=str(ROOT / "BENCHMARKS.md"))
    args = parser.parse_args()

    import pandas as pd
    from pyspark.sql import SparkSession
    from sklearn.metrics import adjusted_rand_score

    from segmentation.config import load_config
    from segmentation.job import run_segmentation
    from segmentation.k_selection import RULES, select_k
    from segmentation.planted import suite
    from segmentation.synthetic import FEATURES, generate_customers

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    spark = (
        SparkSession.builder.master("local[2]").appName("bench-k")
        .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.scheduler.mode", "FAIR")
        .config("spark.driver.extraJavaOptions",
                f"-Dlog4j2.configurationFile=file:{ROOT / 'conf' / 'log4j2.properties'}")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)

    tables = []  # (name, kind, planted k, pandas table, truth, id, features, extra config)
    for seed in (int(s) for s in args.seeds.split(",")):
        for t in suite(seed=seed, rows=args.rows):
            tables.append((t.name, t.kind, t.k, t.customers, t.truth, "customer_id", t.features, {}))
    mall = pd.read_csv(ROOT / "tests" / "data" / "Mall_Customers.csv", dtype={"CustomerID": str})
    tables.append(("mall", "known", 5, mall, None, "CustomerID",
                   ["Annual Income (k$)", "Spending Score (1-100)"], {}))
    demo = generate_customers(spark, args.rows, segments=5, seed=7).toPandas()
    tables.append(("demo customers (generate.py)", "separated", 5, demo.drop(columns="true_segment"),
                   demo["true_segment"].to_numpy(), "customer_id", list(FEATURES), {}))

    results = []
    for name, kind, planted, frame, truth, id_col, features, extra in tables:
        path = str(work / "input" / name.replace(" ", "_"))
        spark.createDataFrame(frame).write.mode("overwrite").parquet(path)
        record = {"table": name, "kind": kind, "planted_k": planted, "rows": len(frame), "features": len(features)}
        for algorithm in (["kmeans", "gmm"] if args.gmm else ["kmeans"]):
            output = str(work / "output" / f"{name.replace(' ', '_')}-{algorithm}")
            config = load_config(None, {
                "input.path": path, "input.id_col": id_col, "input.features": list(features),
                "output.path": output, "report.enabled": False, "algorithm": algorithm, **extra,
            })
            started = time.monotonic()
            if algorithm == "gmm":  # a failed mixture fit is a result of the bench, not its end
                try:
                    record["bic"] = run_segmentation(spark, config)["chosen_k"]
                except Exception as exc:  # noqa: BLE001
                    record["bic"], record["bic_error"] = None, str(exc).strip().splitlines()[0][:200]
                continue
            manifest = run_segmentation(spark, config)
            seconds = time.monotonic() - started
            selection = manifest["k_selection"]
            record.update(job=manifest["chosen_k"], seconds=round(seconds, 1),
                          clear_structure=selection["clear_structure"], summary=selection["summary"])
            signals = {int(k): v for k, v in selection["signals"].items()}
            ks = sorted(signals)
            fit_rows = manifest["fit_rows"]
            total = (fit_rows - 1) * len(manifest["dimensions"])
            for rule in RULES:
                record[rule] = select_k(ks, [signals[k]["wssse"] for k in ks], [signals[k]["silhouette"] for k in ks],
                                        total=total, rows=fit_rows, rule=rule).chosen_k
            if record["auto"] != record["job"]:
                raise RuntimeError(f"{name}: the job chose {record['job']}, its rule on its signals {record['auto']}")
            if truth is not None:
                labels = pd.read_parquet(os.path.join(output, "labels"), columns=[id_col, "segment"])
                order = frame[[id_col]].assign(truth=truth).merge(labels, on=id_col)
                record["ari"] = round(float(adjusted_rand_score(order["truth"], order["segment"])), 4)
        results.append(record)
        print(f"{name}: planted {planted}, job {record['job']} "
              + " ".join(f"{r}={record[r]}" for r in RULES[1:]) + (f" bic={record['bic']}" if "bic" in record else "")
              + f" ({record['seconds']} s)", flush=True)
    spark.stop()

    report = {"seeds": args.seeds, "rows": args.rows, "commit": commit(), "machine": machine(), "tables": results}
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / ("k-suite-gmm.json" if args.gmm else "k-suite.json")).write_text(json.dumps(report, indent=1))
    replace_section(Path(args.markdown), heading(args.seeds, args.gmm), render(report, RULES, args.gmm),
                    report["machine"])
    print(f"wrote {args.markdown}")
    return 0


def render(report: dict, rules: tuple[str, ...], gmm: bool) -> str:
    tables = report["tables"]
    separated = [t for t in tables if t["kind"] == "separated"]
    overlapping = [t for t in tables if t["kind"] == "overlapping"]
    none = [t for t in tables if t["kind"] == "none"]
    columns = ["job", *rules[1:]] + (["bic"] if gmm else [])
    names = {"job": "default (auto, the job's choice)", "bic": "BIC (algorithm gmm)"}
    lines = [
        heading(report["seeds"], gmm), "",
        f"`make bench-k` (benchmarks/k_suite.py) at {report['commit']}: the job in-process on every table of "
        f"`segmentation.planted.suite` (seed {report['seeds']}, {report['rows']:,} rows each), the Mall customers "
        "and the demo customers; every rule applied to the same sweep (its WSSSE and silhouette per K, "
        "K = 2..10, from the manifest)."
        + (" BIC is the lowest-BIC K of a second run with `--algorithm gmm` (spark.ml GaussianMixture, full "
           "covariances) on the same table." if gmm else ""),
        "",
        f"| rule | separated tables: planted K found (of {len(separated)}) | overlapping: mean abs(K - planted) "
        f"(of {len(overlapping)}) | no structure: K chosen |",
        "|---|---|---|---|",
    ]
    for column in columns:
        hits = sum(t.get(column) == t["planted_k"] for t in separated)
        landed = [abs(t[column] - t["planted_k"]) for t in overlapping if t.get(column) is not None]
        off = statistics.mean(landed) if landed else float("nan")
        lines.append(f"| {names.get(column, column)} | {hits} ({hits / len(separated):.0%}) | {off:.2f} | "
                     f"{', '.join(str(t[column]) for t in none)} |")
    unclear = {kind: sum(t["clear_structure"] is False for t in group)
               for kind, group in (("separated", separated), ("overlapping", overlapping), ("none", none))}
    aris = [t["ari"] for t in separated if "ari" in t]
    mall = next((t for t in tables if t["table"] == "mall"), None)
    lines += [
        "",
        f"- Said \"no clear natural grouping\": {unclear['separated']} of {len(separated)} separated tables, "
        f"{unclear['overlapping']} of {len(overlapping)} overlapping, {unclear['none']} of {len(none)} with no structure.",
        f"- Median ARI of the job's segments against the planted groups on the separated tables: "
        f"{statistics.median(aris):.3f} (lowest {min(aris):.3f}).",
        f"- Mall customers: the job chose K = {mall['job']}." if mall else "",
        f"- The job's seconds per table (in-process, warm session): median "
        f"{statistics.median(t['seconds'] for t in tables):.1f}.",
        "",
        "| table | planted | " + " | ".join(columns) + " | ARI |",
        "|---|---|" + "---|" * len(columns) + "---|",
    ]
    for t in tables:
        cells = [("**" + str(t[c]) + "**") if t.get(c) == t["planted_k"] else str(t.get(c)) for c in columns]
        lines.append(f"| {t['table']} | {t['planted_k']} | " + " | ".join(cells) + f" | {t.get('ari', '')} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())

"""Baseline: the single-machine limit, DuckDB doing the job's duties (a bench dependency only).

One row per customer id (duplicate rows dropped, then the first row of each id), the features
standardized in SQL, the elbow on a uniform sample of 50,000 rows with scikit-learn (10
k-means++ initialisations per K, as the job's tasks engine; silhouette on 20,000 rows), K by
the job's own rule, every customer labelled by an SQL arg-min over the K centroids with its
distance, the labels written as Parquet partitioned by segment and the per-segment profile
(customers, share, each feature's mean, median, min and max) as Parquet.

    python benchmarks/duckdb_baseline.py INPUT OUTPUT RESULT.json
"""

from __future__ import annotations

import json
import os
import sys
import time

import duckdb
import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score

from segmentation.k_selection import select_k

from baseline import FEATURES, SAMPLE_ROWS, SILHOUETTE_ROWS, arguments

SEEDS_PER_K = 10


def main() -> None:
    args = arguments().parse_args()
    started = time.monotonic()
    db = duckdb.connect()
    source = os.path.join(args.input, "*.parquet") if os.path.isdir(args.input) else args.input
    columns = ", ".join(["customer_id", *FEATURES])
    db.execute(f"""
        CREATE TABLE customers AS
        SELECT {columns} FROM (SELECT DISTINCT {columns} FROM read_parquet('{source}'))
        QUALIFY row_number() OVER (PARTITION BY customer_id) = 1
    """)
    stats = db.execute("SELECT count(*), " + ", ".join(
        f"avg({f}), stddev_samp({f})" for f in FEATURES) + " FROM customers").fetchone()
    rows, means, stds = stats[0], stats[1::2], stats[2::2]
    z = [f"(({f} - {m!r}) / {s!r})" for f, m, s in zip(FEATURES, means, stds)]
    sample = db.execute(
        f"SELECT {', '.join(z)} FROM customers USING SAMPLE reservoir({SAMPLE_ROWS} ROWS) REPEATABLE ({args.seed})"
    ).fetchnumpy()
    fit = np.column_stack([sample[name] for name in sample])
    rng = np.random.default_rng(args.seed)
    silhouette_rows = rng.choice(len(fit), size=min(SILHOUETTE_ROWS, len(fit)), replace=False)
    ks = list(range(args.k_min, args.k_max + 1))
    elbow_started = time.monotonic()
    wssse, silhouettes, centers = [], [], {}
    for k in ks:
        model = KMeans(n_clusters=k, n_init=SEEDS_PER_K, random_state=args.seed).fit(fit)
        wssse.append(float(model.inertia_))
        silhouettes.append(float(silhouette_score(fit[silhouette_rows], model.labels_[silhouette_rows])))
        centers[k] = model.cluster_centers_
    total = float((fit ** 2).sum())
    chosen = select_k(ks, wssse, silhouettes, total=total, rows=len(fit)).chosen_k
    elbow_seconds = time.monotonic() - elbow_started

    distances = [" + ".join(f"pow({zf} - {float(c)!r}, 2)" for zf, c in zip(z, center)) for center in centers[chosen]]
    nearest = "CASE " + " ".join(
        f"WHEN d{i} = least({', '.join(f'd{j}' for j in range(chosen))}) THEN {i}" for i in range(chosen)) + " END"
    db.execute(f"""
        CREATE TABLE labelled AS
        SELECT {columns}, {nearest} AS segment, sqrt(least({', '.join(f'd{j}' for j in range(chosen))})) AS distance
        FROM (SELECT *, {', '.join(f'{d} AS d{i}' for i, d in enumerate(distances))} FROM customers)
    """)
    os.makedirs(args.output, exist_ok=True)
    db.execute(f"COPY labelled TO '{os.path.join(args.output, 'labels')}' "
               "(FORMAT parquet, PARTITION_BY (segment), OVERWRITE_OR_IGNORE)")
    aggregates = ", ".join(f"avg({f}) AS {f}_mean, median({f}) AS {f}_median, min({f}) AS {f}_min, "
                           f"max({f}) AS {f}_max" for f in FEATURES)
    db.execute(f"""
        COPY (SELECT segment, count(*) AS customers, count(*) / {rows} AS share, {aggregates}
              FROM labelled GROUP BY segment ORDER BY segment)
        TO '{os.path.join(args.output, 'profiles.parquet')}' (FORMAT parquet)
    """)
    result = {"k": ks, "wssse": wssse, "silhouette": silhouettes, "rows": rows, "fit_rows": len(fit),
              "chosen_k": chosen, "seconds_inside": round(time.monotonic() - started, 3),
              "seconds_elbow": round(elbow_seconds, 3)}
    with open(args.result, "w", encoding="utf-8") as handle:
        json.dump(result, handle)
    sys.stdout.flush()


if __name__ == "__main__":
    main()

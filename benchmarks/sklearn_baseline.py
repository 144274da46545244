"""Baseline: the single-machine notebook, scikit-learn on pandas, doing the job's duties.

Reads every row into pandas, drops duplicate rows and keeps one row per customer id (as the
job's duplicate policies do), StandardScaler, one KMeans per K (k-means++, one
initialisation, as ``n_init="auto"`` does for k-means++) with its silhouette on 20,000 rows,
K by the job's own rule, a final fit at the chosen K, the labels (with the distance to the
centroid) written as Parquet partitioned by segment, and the per-segment profile (customers,
share, and each feature's mean, median, min and max) as Parquet. ``--runs N`` keeps the best of
N initialisations per K instead: the quality reference, not timed (no labels, no profile).

    python benchmarks/sklearn_baseline.py INPUT OUTPUT RESULT.json [--runs 1]
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score
from sklearn.preprocessing import StandardScaler

from segmentation.k_selection import select_k

from baseline import FEATURES, SILHOUETTE_ROWS, arguments, profile


def main() -> None:
    parser = arguments()
    parser.add_argument("--runs", type=int, default=1, help="initialisations per K; the best is kept")
    args = parser.parse_args()
    started = time.monotonic()

    customers = pd.read_parquet(args.input, columns=["customer_id", *FEATURES])
    customers = customers.drop_duplicates().drop_duplicates("customer_id", keep="first")
    values = customers[FEATURES].to_numpy(dtype="float64")
    scaled = StandardScaler().fit_transform(values)
    ks = list(range(args.k_min, args.k_max + 1))
    rng = np.random.default_rng(args.seed)
    silhouette_rows = rng.choice(len(scaled), size=min(SILHOUETTE_ROWS, len(scaled)), replace=False)
    wssse, silhouettes, models = [], [], {}
    for k in ks:
        model = KMeans(n_clusters=k, n_init=args.runs, random_state=args.seed).fit(scaled)
        wssse.append(float(model.inertia_))
        models[k] = model
        if args.runs == 1:
            silhouettes.append(float(silhouette_score(scaled[silhouette_rows], model.labels_[silhouette_rows])))
        else:
            silhouettes.append(None)
    total = float((scaled ** 2).sum())  # the WSSSE of K = 1 (the columns are centred)
    chosen = select_k(ks, wssse, silhouettes, total=total, rows=len(scaled)).chosen_k
    result = {"k": ks, "wssse": wssse, "silhouette": silhouettes, "rows": len(customers),
              "chosen_k": chosen, "runs": args.runs}
    if args.runs == 1:
        final = models[chosen]  # the chosen K's fit is the model, as in the job
        customers["distance"] = np.sqrt(((scaled - final.cluster_centers_[final.labels_]) ** 2).sum(axis=1))
        customers["segment"] = final.labels_
        pq.write_to_dataset(
            pa.Table.from_pandas(customers, preserve_index=False),
            os.path.join(args.output, "labels"),
            partition_cols=["segment"],
            existing_data_behavior="delete_matching",
        )
        profile(customers).to_parquet(os.path.join(args.output, "profiles.parquet"), index=False)
    result["seconds_inside"] = round(time.monotonic() - started, 3)
    with open(args.result, "w", encoding="utf-8") as handle:
        json.dump(result, handle)
    # At 10M rows the interpreter's shutdown aborted ("terminate called without an active
    # exception", from a native thread pool) after all the work was written. Everything is
    # on disk and closed here, so leave without running the native libraries' teardown.
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()

"""Baseline: the single-machine notebook, scikit-learn on pandas.

Reads every row into pandas, StandardScaler, one KMeans per K (k-means++, one
initialisation, as ``n_init="auto"`` does for k-means++), a final fit at the chosen
K and the labels written as Parquet partitioned by cluster. ``--runs N`` keeps the
best of N initialisations per K instead: the quality reference, not timed.

    python benchmarks/sklearn_baseline.py INPUT OUTPUT RESULT.json [--runs 1]
"""

from __future__ import annotations

import json
import os
import sys
import time

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from sklearn.cluster import KMeans
from sklearn.preprocessing import StandardScaler

from segmentation.k_selection import select_k

from baseline import FEATURES, arguments


def main() -> None:
    parser = arguments()
    parser.add_argument("--runs", type=int, default=1, help="initialisations per K; the best is kept")
    args = parser.parse_args()
    started = time.monotonic()

    customers = pd.read_parquet(args.input, columns=["customer_id", *FEATURES])
    scaled = StandardScaler().fit_transform(customers[FEATURES].to_numpy(dtype="float64"))
    ks = list(range(args.k_min, args.k_max + 1))
    wssse = []
    for k in ks:
        model = KMeans(n_clusters=k, n_init=args.runs, random_state=args.seed).fit(scaled)
        wssse.append(float(model.inertia_))
    chosen = select_k(ks, wssse, [None] * len(ks)).chosen_k
    result = {"k": ks, "wssse": wssse, "rows": len(customers), "chosen_k": chosen, "runs": args.runs}
    if args.runs == 1:
        final = KMeans(n_clusters=chosen, n_init=1, random_state=args.seed).fit(scaled)
        customers["prediction"] = final.labels_
        pq.write_to_dataset(
            pa.Table.from_pandas(customers, preserve_index=False),
            args.output,
            partition_cols=["prediction"],
            existing_data_behavior="delete_matching",
        )
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

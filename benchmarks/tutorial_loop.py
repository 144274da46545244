"""Baseline: the spark.ml elbow loop as the tutorials write it.

VectorAssembler and StandardScaler on the full data, then for each K one KMeans
fit after another, its cost from the training summary and a silhouette pass over
every row; nothing cached. Then a final fit at the chosen K and the labels written
as Parquet partitioned by cluster. The K rule is the job's own (segmentation.k_selection),
so the chosen K compares like with like.

    python benchmarks/tutorial_loop.py INPUT OUTPUT RESULT.json [--k-min 2 --k-max 10]
"""

from __future__ import annotations

import json
import time

from pyspark.ml.clustering import KMeans
from pyspark.ml.evaluation import ClusteringEvaluator
from pyspark.ml.feature import StandardScaler, VectorAssembler
from pyspark.sql import SparkSession

from segmentation.k_selection import select_k

from baseline import FEATURES, arguments


def main() -> None:
    parser = arguments()
    args = parser.parse_args()
    started = time.monotonic()

    spark = SparkSession.builder.appName("tutorial-loop").getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    customers = spark.read.parquet(args.input)
    assembled = VectorAssembler(inputCols=FEATURES, outputCol="features").transform(customers)
    scaled = (
        StandardScaler(inputCol="features", outputCol="scaled", withMean=True, withStd=True)
        .fit(assembled)
        .transform(assembled)
    )
    evaluator = ClusteringEvaluator(featuresCol="scaled")
    ks = list(range(args.k_min, args.k_max + 1))
    wssse, silhouettes, rows = [], [], scaled.count()
    for k in ks:
        model = KMeans(k=k, seed=args.seed, featuresCol="scaled").fit(scaled)
        wssse.append(float(model.summary.trainingCost))
        silhouettes.append(float(evaluator.evaluate(model.transform(scaled))))
    chosen = select_k(ks, wssse, silhouettes).chosen_k
    final = KMeans(k=chosen, seed=args.seed, featuresCol="scaled").fit(scaled)
    (
        final.transform(scaled)
        .select("customer_id", *FEATURES, "prediction")
        .write.mode("overwrite")
        .partitionBy("prediction")
        .parquet(args.output)
    )
    spark.stop()
    with open(args.result, "w", encoding="utf-8") as handle:
        json.dump(
            {"k": ks, "wssse": wssse, "rows": rows, "chosen_k": chosen,
             "seconds_inside": round(time.monotonic() - started, 3)},
            handle,
        )


if __name__ == "__main__":
    main()

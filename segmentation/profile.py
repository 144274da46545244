"""Stage 8, profile: one row per segment, in one aggregation pass over the labels.

Columns: ``segment``, ``segment_name``, ``customers``, ``share``, ``wssse`` (the sum of
the customers' squared distances to the centroid, in z-units), then for every
feature F: ``F_mean``, ``F_min``, ``F_max``, ``F_median`` (approximate, relative
error 1/10000) over the segment's customers, and ``F_centroid`` (original units)
and ``F_centroid_z`` (z-units) of the model's centroid.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from segmentation.label import DISTANCE, SEGMENT, SEGMENT_NAME, Segment

MEDIAN_ACCURACY = 10_000
STATISTICS = ("mean", "min", "max", "median", "centroid", "centroid_z")


def profile_columns(features: tuple[str, ...]) -> list[str]:
    return [SEGMENT, SEGMENT_NAME, "customers", "share", "wssse"] + [
        f"{name}_{stat}" for name in features for stat in STATISTICS
    ]


def profile_segments(
    spark: SparkSession, labels: DataFrame, features: tuple[str, ...], segments: list[Segment], total: int
) -> DataFrame:
    """Aggregates ``labels`` by segment; ``total`` is the number of labelled customers."""
    aggregates = [
        F.count(F.lit(1)).alias("customers"),
        F.sum(F.col(DISTANCE) * F.col(DISTANCE)).alias("wssse"),
    ]
    for name in features:
        column = F.col(f"`{name}`").cast("double")
        aggregates += [
            F.avg(column).alias(f"{name}_mean"),
            F.min(column).alias(f"{name}_min"),
            F.max(column).alias(f"{name}_max"),
            F.percentile_approx(column, 0.5, MEDIAN_ACCURACY).alias(f"{name}_median"),
        ]
    observed = labels.groupBy(SEGMENT).agg(*aggregates)
    centroids = spark.createDataFrame(
        [(s.number, s.name, *s.centroid, *s.centroid_z) for s in segments],
        schema=T.StructType(
            [
                T.StructField(SEGMENT, T.IntegerType(), False),
                T.StructField(SEGMENT_NAME, T.StringType(), False),
            ]
            + [T.StructField(f"{name}_centroid", T.DoubleType(), False) for name in features]
            + [T.StructField(f"{name}_centroid_z", T.DoubleType(), False) for name in features]
        ),
    )
    # Every segment of the model gets a row, also one that no customer fell into.
    return (
        centroids.join(observed, on=SEGMENT, how="left")
        .withColumn("customers", F.coalesce(F.col("customers"), F.lit(0).cast("long")))
        .withColumn("wssse", F.coalesce(F.col("wssse"), F.lit(0.0)))
        .withColumn("share", F.col("customers") / F.lit(float(total)))
        .select(*[F.col(f"`{c}`") for c in profile_columns(features)])
        .coalesce(1)  # one small file; sorting within it needs no range-partitioning pass
        .sortWithinPartitions(SEGMENT)
    )

"""Stage 8, profile: one row per segment, in one aggregation pass over the labels.

Columns: ``segment``, ``segment_name``, ``customers``, ``share``, ``wssse`` (the sum of
the customers' squared distances to the centroid, in z-units), then for every
feature F: ``F_mean``, ``F_min``, ``F_max``, ``F_median`` (approximate, see
``compat.median``) over the segment's customers, and ``F_centroid`` (original
units) and ``F_centroid_z`` (z-units) of the model's centroid. A categorical (one-hot) feature
has, for every category ``F=v``: ``F=v_share`` (the segment's customers with that
value), ``F=v_centroid`` (the share at the centroid) and ``F=v_centroid_z``.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from segmentation.compat import median
from segmentation.features import OTHER, Scaling
from segmentation.label import DISTANCE, SEGMENT, SEGMENT_NAME, Segment
from segmentation.sql import column, local_table

# Medians come from one KLL sketch per segment and feature on Spark 4.1+ (Apache DataSketches,
# built into Spark), from percentile_approx before (compat.median has the accuracy of each).
# Measured at 10M rows on 2 cores: the aggregation took 2.4 s with the sketch, against 9.8 s with
# percentile_approx at accuracy 10,000, and 1.1 s with no medians at all.
STATISTICS = ("mean", "min", "max", "median", "centroid", "centroid_z")
CATEGORY_STATISTICS = ("share", "centroid", "centroid_z")
PREDICTED = {"expected_active_customers": "p_purchase", "expected_revenue": "expected_spend"}


def profile_columns(scaling: Scaling | tuple[str, ...], predicted: bool = False) -> list[str]:
    """The profile's columns, for a run's scaling (or for plain numeric features), with predictions or not."""
    if not isinstance(scaling, Scaling):
        scaling = Scaling(tuple(scaling), (0.0,) * len(scaling), (1.0,) * len(scaling))
    columns = [SEGMENT, SEGMENT_NAME, "customers", "share", "wssse"]
    for d in scaling.dimensions:
        stats = CATEGORY_STATISTICS if d.category is not None else STATISTICS
        columns += [f"{d.name}_{stat}" for stat in stats]
    return columns + (list(PREDICTED) if predicted else [])


def dimension_means(row: dict, dimensions) -> dict[str, float | None]:
    """Per model dimension of one profile row: its ``_mean`` (numeric, original units) or, for a
    category, its ``_share``; None where the segment had no customers."""
    return {d: row.get(f"{d}_mean", row.get(f"{d}_share")) for d in dimensions}


def profile_segments(
    spark: SparkSession, labels: DataFrame, scaling: Scaling, segments: list[Segment], total: int
) -> DataFrame:
    """Aggregates ``labels`` by segment; ``total`` is the number of labelled customers."""
    aggregates = [
        F.count(F.lit(1)).alias("customers"),
        F.sum(F.col(DISTANCE) * F.col(DISTANCE)).alias("wssse"),
    ]
    for d in scaling.dimensions:
        if d.category is not None:
            known = [o.value for o in scaling.dimensions if o.feature == d.feature and o.value != OTHER]
            raw = column(d.feature)
            is_value = raw.isNull() | ~raw.isin(known) if d.value == OTHER else raw.eqNullSafe(d.value)
            aggregates.append(F.avg(is_value.cast("double")).alias(f"{d.name}_share"))
            continue
        value = column(d.feature).cast("double")
        aggregates += [
            F.avg(value).alias(f"{d.name}_mean"),
            F.min(value).alias(f"{d.name}_min"),
            F.max(value).alias(f"{d.name}_max"),
            median(spark, value).alias(f"{d.name}_median"),
        ]
    predicted = "p_purchase" in labels.columns
    if predicted:
        aggregates += [F.sum(source).alias(name) for name, source in PREDICTED.items()]
    observed = labels.groupBy(SEGMENT).agg(*aggregates)
    names = scaling.features
    centroids = local_table(
        spark,
        [(s.number, s.name, *s.centroid, *s.centroid_z) for s in segments],
        T.StructType(
            [
                T.StructField(SEGMENT, T.IntegerType(), False),
                T.StructField(SEGMENT_NAME, T.StringType(), False),
            ]
            + [T.StructField(f"{name}_centroid", T.DoubleType(), False) for name in names]
            + [T.StructField(f"{name}_centroid_z", T.DoubleType(), False) for name in names]
        ),
    )
    # Every segment of the model gets a row, also one that no customer fell into. (No empty
    # withColumns: Spark Connect refuses one.)
    zero = {"customers": F.lit(0).cast("long"), "wssse": F.lit(0.0),
            **{name: F.lit(0.0) for name in PREDICTED if predicted}}
    return (
        centroids.join(observed, on=SEGMENT, how="left")
        .withColumns({name: F.coalesce(F.col(name), value) for name, value in zero.items()})
        .withColumn("share", F.col("customers") / F.lit(float(total)))
        .select(*[column(c) for c in profile_columns(scaling, predicted)])
        .coalesce(1)  # one small file; sorting within it needs no range-partitioning pass
        .sortWithinPartitions(SEGMENT)
    )


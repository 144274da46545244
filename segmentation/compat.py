"""What differs between the Spark lines the project supports (3.5 LTS to 4.x), in one place.

Each helper takes the newer API where the running Spark has it and an equivalent where it does
not; the output contract (README) says what a fallback changes. Column-API checks look at the
installed pyspark (the client, under Connect too); SQL-function checks ask the session's
Spark, which under Connect is the server.
"""

from __future__ import annotations

import re

from pyspark.sql import Column, SparkSession
from pyspark.sql import functions as F

# Medians: Spark 4.1 added the DataSketches KLL functions. Exact while a group has at most K
# rows; beyond that the median's rank is off by at most 1/10,000 of the group with 99%
# confidence (DataSketches: 2.296 / K^0.9723 = 0.96e-4).
KLL_SPARK = (4, 1)
MEDIAN_SKETCH_K = 32_000
# Before 4.1: percentile_approx at this accuracy, whose rank error is at most 1/accuracy of the
# group, deterministically (Greenwald-Khanna); about 4x slower than the sketch at 10M rows.
PERCENTILE_ACCURACY = 10_000


def spark_version(spark: SparkSession) -> tuple[int, int]:
    """(major, minor) of the session's Spark (the server's, under Connect)."""
    major, minor = re.match(r"(\d+)\.(\d+)", spark.version).groups()
    return int(major), int(minor)


def has_kll_sketches(spark: SparkSession) -> bool:
    return spark_version(spark) >= KLL_SPARK


def median(spark: SparkSession, value: Column) -> Column:
    """The approximate median of a double column over a group (see the constants above)."""
    if has_kll_sketches(spark):
        sketch = F.call_function("kll_sketch_agg_double", value, F.lit(MEDIAN_SKETCH_K))
        return F.call_function("kll_sketch_get_quantile_double", sketch, F.lit(0.5))
    return F.percentile_approx(value, 0.5, PERCENTILE_ACCURACY)


def try_cast(value: Column, type_name: str) -> Column:
    """``value`` cast to ``type_name``, null where it cannot be, whatever spark.sql.ansi.enabled says.

    ``Column.try_cast`` is pyspark 4.0's. On 3.5 a plain cast: null where it cannot cast while
    spark.sql.ansi.enabled is off, 3.5's default. (With ANSI on, a date text that cannot be cast
    stops the job rather than being dropped; numbers are only cast once their pattern matched.)
    """
    if hasattr(type(value), "try_cast"):
        return value.try_cast(type_name)
    return value.cast(type_name)

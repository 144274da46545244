"""Names and literals in SQL: column names quoted once, here, and the literals of the SQL
that the saved model carries (its SQLTransformer steps).

The model's SQL is generated from fitted numbers (means, deviations, centroids, clip
bounds) and names; a number must be finite to be written at all, since Spark SQL has no
literal for infinity or NaN (``inf`` would be read as a column name).
"""

from __future__ import annotations

import math

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T


def quoted(name: str) -> str:
    """A column name as a SQL identifier: ``stats.spend`` is one column, not field spend of stats."""
    return "`" + name.replace("`", "``") + "`"


def column(name: str) -> Column:
    """The column of that exact name, whatever its dots, spaces or punctuation."""
    return F.col(quoted(name))


def sql_number(value: float) -> str:
    """A double literal; a non-finite value is a bug upstream (the clean stage drops them)."""
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"non-finite number {number!r} cannot be written into the model's SQL")
    return repr(number)


def sql_string(text: str) -> str:
    """A single-quoted string literal, backslashes and quotes escaped."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def local_table(spark: SparkSession, rows: list[tuple], schema: T.StructType) -> DataFrame:
    """A small table of ``rows`` made in the JVM (``inline`` over literal structs), with exactly
    ``schema``. ``createDataFrame`` of a list runs a Python RDD job on classic Spark, and its first
    Python worker, started in the middle of a stage, cost the 10M run's profile stage 1.2 s."""
    structs = [F.struct(*[F.lit(value).cast(f.dataType).alias(f.name) for value, f in zip(row, schema.fields)])
               for row in rows]
    return spark.range(1).select(F.inline(F.array(*structs)))

"""Names and literals in SQL: column names quoted once, here, and the literals of the SQL
that the saved model carries (its SQLTransformer steps).

The model's SQL is generated from fitted numbers (means, deviations, centroids, clip
bounds) and names; a number must be finite to be written at all, since Spark SQL has no
literal for infinity or NaN (``inf`` would be read as a column name).
"""

from __future__ import annotations

import math
import numbers

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
    Python worker, started in the middle of a stage, cost the 10M run's profile stage 1.2 s. The
    rows are one SQL expression, parsed once: built from Column objects, the profile's K-row
    centroid table took some 1,600 calls into the JVM (an 8-row, 10-column table: 0.13-0.18 s
    on a warm session, against 0.02-0.03 s as one expression)."""
    structs = ", ".join(
        "struct(" + ", ".join(f"CAST({sql_literal(value)} AS {f.dataType.simpleString()})"
                              for value, f in zip(row, schema.fields)) + ")"
        for row in rows
    )
    return spark.range(1).selectExpr(f"inline(array({structs}))").toDF(*schema.fieldNames())


def sql_literal(value) -> str:
    """A literal of a small table: a finite double (exactly: a ``D`` literal is parsed as Java
    parses a double), an integer, a string, or NULL."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, numbers.Integral):  # numpy's integers too
        return f"{int(value)}L"
    if isinstance(value, numbers.Real):
        return sql_number(value).upper() + "D"
    return sql_string(str(value))

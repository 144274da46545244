"""Names and literals in SQL: column names quoted once, here, and the literals of the SQL
that the saved model carries (its SQLTransformer steps).

The model's SQL is generated from fitted numbers (means, deviations, centroids, clip
bounds) and names; a number must be finite to be written at all, since Spark SQL has no
literal for infinity or NaN (``inf`` would be read as a column name).
"""

from __future__ import annotations

import datetime
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


KEEP = "__keep"


def local_table(spark: SparkSession, rows: list, schema: T.StructType | str) -> DataFrame:
    """A small table of ``rows`` (tuples, or dicts by field name) made in the JVM (``inline`` over
    literal structs), with exactly ``schema`` (a StructType or DDL), nullability included.

    ``createDataFrame`` of a list runs a Python RDD job on classic Spark, and its Python worker,
    started beside a stage, cost the 10M run's profile stage 1.2 s (and the 1M run's label stage
    0.4 to 0.6 s while the elbow table was written beside it). The rows are one SQL expression,
    parsed once: built from Column objects, the profile's K-row centroid table took some 1,600
    calls into the JVM (an 8-row, 10-column table: 0.13-0.18 s on a warm session, against
    0.02-0.03 s as one expression).

    A literal column is nullable only where a row holds NULL, so one extra row, with NULL in
    every nullable field, is added and filtered out again: the table has the schema's flags
    whatever its values.
    """
    if isinstance(schema, str):
        schema = T._parse_datatype_string(schema)  # as createDataFrame reads a DDL schema
    if not rows:  # no literal row to take types from
        return spark.createDataFrame([], schema)
    values = [_values(row, schema) for row in rows]
    nullable = [f.nullable for f in schema.fields]
    padded = [(v, True) for v in values]
    if any(nullable):
        padded.append((tuple(None if n else v for n, v in zip(nullable, values[0])), False))
    structs = ", ".join(
        "struct(" + ", ".join([f"CAST({sql_literal(value)} AS {f.dataType.simpleString()})"
                               for value, f in zip(row, schema.fields)] + [sql_literal(keep)]) + ")"
        for row, keep in padded
    )
    table = spark.range(1).selectExpr(f"inline(array({structs}))").toDF(*schema.fieldNames(), KEEP)
    return table.where(F.col(KEEP)).drop(KEEP)


def _values(row, schema: T.StructType) -> tuple:
    """A row's values in the schema's order: a tuple as it is, a dict by field name."""
    return tuple(row[name] for name in schema.fieldNames()) if isinstance(row, dict) else tuple(row)


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
    if isinstance(value, (list, tuple)):  # an array: the CAST around it gives its elements' type
        return "array(" + ", ".join(sql_literal(v) for v in value) + ")"
    if isinstance(value, datetime.date) and not isinstance(value, datetime.datetime):
        return f"DATE '{value.isoformat()}'"
    return sql_string(str(value))

"""Names and literals in SQL: column names quoted once, here, and the literals of the SQL
that the saved model carries (its SQLTransformer steps).

The model's SQL is generated from fitted numbers (means, deviations, centroids, clip
bounds) and names; a number must be finite to be written at all, since Spark SQL has no
literal for infinity or NaN (``inf`` would be read as a column name).
"""

from __future__ import annotations

import math

from pyspark.sql import Column
from pyspark.sql import functions as F


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

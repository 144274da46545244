"""Stage 2, clean: rows that cannot be clustered are dropped and counted by reason."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

REASON = "drop_reason"


def drop_reason(id_col: str, features: tuple[str, ...]) -> Column:
    """The first reason a row cannot be clustered, or null when it can.

    Reasons are ``null <id>``, ``null <feature>``, ``NaN <feature>`` and
    ``infinite <feature>``, checked in that order (id, then features in order),
    so each dropped row is counted exactly once.
    """
    reason = F.when(F.col(f"`{id_col}`").isNull(), F.lit(f"null {id_col}"))
    for name in features:
        value = F.col(f"`{name}`")
        reason = (
            reason.when(value.isNull(), F.lit(f"null {name}"))
            .when(F.isnan(value), F.lit(f"NaN {name}"))
            .when(F.abs(value) == float("inf"), F.lit(f"infinite {name}"))
        )
    return reason


def with_drop_reason(id_col: str, features: tuple[str, ...]):
    """``df.transform(with_drop_reason(...))`` adds the ``drop_reason`` column."""

    def transform(df: DataFrame) -> DataFrame:
        return df.withColumn(REASON, drop_reason(id_col, features))

    return transform


def count_by_reason(reasoned: DataFrame) -> tuple[int, dict[str, int]]:
    """One pass: (input rows, {reason: rows dropped for it}), reasons sorted by name."""
    counts = reasoned.groupBy(REASON).count().collect()
    total = sum(row["count"] for row in counts)
    dropped = {row[REASON]: row["count"] for row in counts if row[REASON] is not None}
    return total, dict(sorted(dropped.items()))


def keep_valid(reasoned: DataFrame) -> DataFrame:
    return reasoned.where(F.col(REASON).isNull()).drop(REASON)

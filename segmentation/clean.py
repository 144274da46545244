"""Stage 2, clean: rows that cannot be clustered are dropped and counted by reason."""

from __future__ import annotations

from dataclasses import dataclass

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


@dataclass(frozen=True)
class RowCounts:
    """What one pass over the input found: rows, drops by reason, and repeated ids."""

    input_rows: int
    dropped: dict[str, int]  # reason -> rows, sorted by reason
    duplicate_rows: int  # valid rows beyond the first of their id
    duplicate_ids: int  # ids with more than one valid row
    duplicate_examples: list  # up to two such ids: the smallest and the largest


def count_rows(reasoned: DataFrame, id_col: str) -> RowCounts:
    """One pass (a scan and a shuffle by id): rows by drop reason, and duplicate ids among valid rows.

    Counting per (id, reason) first puts every valid row of one id in one group, so the
    duplicate check costs no second scan of the input.
    """
    customer = F.col(f"`{id_col}`")  # grouped in its own type: a cast would slow the shuffle
    per_id = reasoned.groupBy(customer.alias("id"), F.col(REASON)).agg(F.count(F.lit(1)).alias("n"))
    repeated = F.col(REASON).isNull() & (F.col("n") > 1)
    counts = (
        per_id.groupBy(REASON)
        .agg(
            F.sum("n").alias("rows"),
            F.sum(F.when(repeated, F.col("n") - 1)).alias("extra"),
            F.count(F.when(repeated, F.lit(1))).alias("ids"),
            F.min(F.when(repeated, F.col("id"))).cast("string").alias("first"),
            F.max(F.when(repeated, F.col("id"))).cast("string").alias("last"),
        )
        .collect()
    )
    dropped = {row[REASON]: int(row["rows"]) for row in counts if row[REASON] is not None}
    valid = next((row for row in counts if row[REASON] is None), None)
    examples = [] if valid is None or valid["first"] is None else sorted({valid["first"], valid["last"]})
    return RowCounts(
        input_rows=sum(int(row["rows"]) for row in counts),
        dropped=dict(sorted(dropped.items())),
        duplicate_rows=int(valid["extra"] or 0) if valid else 0,
        duplicate_ids=int(valid["ids"]) if valid else 0,
        duplicate_examples=examples,
    )


def keep_valid(reasoned: DataFrame) -> DataFrame:
    return reasoned.where(F.col(REASON).isNull()).drop(REASON)


def count_duplicate_ids(clean: DataFrame, id_col: str) -> tuple[int, int, list]:
    """One pass: (rows beyond the first of their id, ids that repeat, up to 3 such ids)."""
    per_id = clean.groupBy(F.col(f"`{id_col}`").alias("id")).agg(F.count(F.lit(1)).alias("n"))
    repeated = per_id.where(F.col("n") > 1)
    summary = repeated.agg(
        F.coalesce(F.sum(F.col("n") - 1), F.lit(0)).alias("extra"),
        F.count(F.lit(1)).alias("ids"),
        F.slice(F.sort_array(F.collect_list(F.col("id").cast("string"))), 1, 3).alias("examples"),
    ).first()
    return int(summary["extra"]), int(summary["ids"]), list(summary["examples"] or [])


def one_row_per_id(id_col: str, features: tuple[str, ...], policy: str):
    """``df.transform(one_row_per_id(...))`` for the keep_first and aggregate policies.

    keep_first keeps, of the rows of one id, the first in the order of its feature
    values (so the choice does not depend on how the input is split into files);
    aggregate averages each feature over the id's rows.
    """

    def transform(df: DataFrame) -> DataFrame:
        customer = F.col(f"`{id_col}`")
        if policy == "keep_first":
            first = F.min(F.struct(*[F.col(f"`{f}`") for f in features])).alias("first")
            return df.groupBy(customer).agg(first).select(
                customer, *[F.col("first").getField(f).alias(f) for f in features]
            )
        if policy == "aggregate":
            return df.groupBy(customer).agg(*[F.avg(F.col(f"`{f}`")).alias(f) for f in features])
        raise ValueError(f"no transformation for duplicate id policy {policy!r}")

    return transform


def is_invalid(name: str) -> Column:
    """Null, NaN or infinite: a feature value that cannot be clustered."""
    value = F.col(f"`{name}`")
    return value.isNull() | F.isnan(value) | (F.abs(value) == float("inf"))


def feature_medians(df: DataFrame, features: tuple[str, ...]) -> dict[str, float]:
    """One pass: the approximate median of each feature over its valid values."""
    row = df.select(
        *[
            F.percentile_approx(F.when(~is_invalid(f), F.col(f"`{f}`")), 0.5, 10_000).alias(f)
            for f in features
        ]
    ).first()
    return {f: row[f] for f in features}


def impute(features: tuple[str, ...], medians: dict[str, float]):
    """``df.transform(impute(...))``: invalid feature values replaced by the feature's median."""

    def transform(df: DataFrame) -> DataFrame:
        types = {f.name: f.dataType for f in df.schema.fields}
        replaced = {
            f: F.when(is_invalid(f), F.lit(medians[f]).cast(types[f])).otherwise(F.col(f"`{f}`"))
            for f in features
        }
        return df.withColumns(replaced)

    return transform

"""Stage 2, clean: rows that cannot be clustered are dropped and counted by reason.

``clean_customers`` is the whole policy of ``input`` (invalid values, exact copies, repeated
ids) from the selected columns to the clean table and its counts; the functions below it are
its DataFrame-to-DataFrame steps.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from segmentation.compat import PERCENTILE_ACCURACY
from segmentation.config import InputConfig, NumberTextConfig
from segmentation.errors import InputError
from segmentation.parse import is_blank, number_from_text
from segmentation.read import text_columns, unreadable_file
from segmentation.sql import column

log = logging.getLogger(__name__)

REASON = "drop_reason"
# Beyond this magnitude a value is no measure of a customer, and the scaler's sums of
# squares overflow a double (1e154 squared is already infinite): such a value is
# ``out of range`` and treated like other invalid values.
MAX_MAGNITUDE = 1e100


@dataclass
class CleanTable:
    """The clean table (one row per id) and what the clean stage counted on the way."""

    table: DataFrame
    rows: int  # rows of ``table``
    input_rows: int
    dropped: dict[str, int]  # reason -> rows, by first reason
    imputed: dict[str, Any] = field(default_factory=dict)  # impute_median's facts, else empty


def clean_customers(
    customers: DataFrame,
    cfg: InputConfig,
    numeric: tuple[str, ...],
    categorical: tuple[str, ...] = (),
    log1p: tuple[str, ...] = (),
) -> CleanTable:
    """Applies the input policy to ``customers`` (the id, the features and any carried columns).

    One pass (a scan and an aggregation by id) counts the rows by drop reason, the exact copies
    and the repeated ids; then ``invalid_values``, ``duplicate_rows`` and ``duplicate_ids``
    decide what is dropped, imputed, merged or refused. An input error when nothing is left.
    """
    id_col, features = cfg.id_col, cfg.features
    reasoned = customers.transform(
        with_drop_reason(id_col, numeric, text_columns(customers, numeric), log1p, cfg.number_text)
    )
    exact = features if cfg.duplicate_rows == "drop" else ()
    try:
        counts = count_rows(reasoned, id_col, exact)
    except Exception as exc:  # the first pass over the input finds unreadable files
        raise (unreadable_file(exc, cfg.format) or exc) from None
    clean, dropped, imputed = _apply_invalid_values(reasoned, counts.dropped, cfg, numeric)
    if counts.exact_copies:
        clean = clean.dropDuplicates([id_col, *features])
        dropped["duplicate row"] = counts.exact_copies
    rows = counts.input_rows - sum(dropped.values())
    # Imputation keeps rows the pass counted as invalid: their ids are counted again.
    duplicates = (
        count_duplicate_ids(clean, id_col) if imputed
        else (counts.duplicate_rows, counts.duplicate_ids, counts.duplicate_examples)
    )
    clean, rows = _one_row_per_id(clean, rows, cfg, dropped, duplicates, categorical)
    log.info("read %d rows, dropped %d %s", counts.input_rows, counts.input_rows - rows, dropped or "")
    if rows == 0:
        text_hint = [r.split(" ", 1)[1] for r in dropped if r.startswith("unparseable ")]
        hint = (
            f"; if {text_hint[0]!r} holds categories, one-hot encode it: input.transforms: "
            f"{{{text_hint[0]!r}: [one_hot]}}" if text_hint else ""
        )
        raise InputError(f"no rows left in {cfg.path} after dropping rows with missing values {dropped}{hint}")
    return CleanTable(clean, rows, counts.input_rows, dropped, imputed)


def drop_reason(
    id_col: str,
    features: tuple[str, ...],
    parsed: dict[str, Column] | None = None,
    log1p: tuple[str, ...] = (),
) -> Column:
    """The first reason a row cannot be clustered, or null when it can.

    Reasons are ``null <id>``, then ``<f> <= -1 (log1p)`` for each feature under log1p
    (outside its domain: such a row is dropped under every policy, so it is checked
    first), then for each feature in order ``null <f>``, ``unparseable <f>`` (text that
    is not a number by ``input.number_text``), ``NaN <f>``, ``infinite <f>`` and
    ``out of range <f>`` (magnitude above MAX_MAGNITUDE), so each dropped row is
    counted exactly once. ``parsed`` maps a feature stored as
    text to the number read from it; its own column holds the raw text.
    """
    parsed = parsed or {}
    reason = F.when(column(id_col).isNull(), F.lit(f"null {id_col}"))
    for name in log1p:
        reason = reason.when(parsed.get(name, column(name)) <= -1, F.lit(f"{name} <= -1 (log1p)"))
    for name in features:
        value = parsed.get(name, column(name))
        if name in parsed:
            blank = is_blank(column(name))
            reason = reason.when(blank, F.lit(f"null {name}")).when(value.isNull(), F.lit(f"unparseable {name}"))
        reason = (
            reason.when(value.isNull(), F.lit(f"null {name}"))
            .when(F.isnan(value), F.lit(f"NaN {name}"))
            .when(F.abs(value) == float("inf"), F.lit(f"infinite {name}"))
            .when(F.abs(value) > MAX_MAGNITUDE, F.lit(f"out of range {name}"))
        )
    return reason


def with_drop_reason(
    id_col: str,
    features: tuple[str, ...],
    text_features: tuple[str, ...] = (),
    log1p: tuple[str, ...] = (),
    rule: NumberTextConfig = NumberTextConfig(),
):
    """``df.transform(with_drop_reason(...))``: text features read as numbers, plus ``drop_reason``.

    ``features`` are the numeric features (categorical ones are never dropped: a null
    category is a value of its own); ``text_features`` are those of them stored as text.
    """

    def transform(df: DataFrame) -> DataFrame:
        parsed = {
            f: number_from_text(column(f), rule) for f in text_features
        }
        reason = drop_reason(id_col, features, parsed, log1p)
        return df.select(
            *[parsed[c].alias(c) if c in parsed else column(c) for c in df.columns],
            reason.alias(REASON),
        )

    return transform


@dataclass(frozen=True)
class RowCounts:
    """What one pass over the input found: rows, drops by reason, exact copies and repeated ids."""

    input_rows: int
    dropped: dict[str, int]  # reason -> rows, sorted by reason
    duplicate_rows: int  # valid rows beyond the first of their id (exact copies aside)
    duplicate_ids: int  # ids with more than one distinct valid row
    duplicate_examples: list  # up to two such ids: the smallest and the largest
    exact_copies: int = 0  # valid rows equal to an earlier one in the id and every feature


def count_rows(reasoned: DataFrame, id_col: str, features: tuple[str, ...] = ()) -> RowCounts:
    """Rows by drop reason, exact copies and duplicate ids: one aggregation by (id, reason).

    The aggregation is combined on the map side, so the shuffle carries one small row per
    id and task, not the rows. With ``features``, each valid row is summarised by a 64-bit
    hash of its features, and the aggregate keeps the smallest and largest hash per id:
    when they are equal, every row of that id is an exact copy of the first. Only ids whose
    rows differ (repeated ids proper, which fail the run by default) need their variants
    counted exactly: a second pass over just those ids' rows, taken only when there are any.
    With ``features`` empty, exact copies are not told apart: they count as rows of a
    repeated id.
    """
    customer = column(id_col)  # grouped in its own type: a cast would slow the shuffle
    valid = F.col(REASON).isNull()
    aggregates = [F.count(F.lit(1)).alias("__rows")]
    if features:
        digest = _feature_digest(features)
        aggregates += [F.min(digest).alias("__lo"), F.max(digest).alias("__hi")]
    per_id = reasoned.groupBy(customer, F.col(REASON)).agg(*aggregates)
    repeated = valid & (F.col("__rows") > 1)
    mixed = repeated & (F.col("__lo") != F.col("__hi")) if features else repeated
    copies = F.when(repeated & ~mixed, F.col("__rows") - 1) if features else F.lit(None)
    counts = (
        per_id.groupBy(REASON)
        .agg(
            F.sum("__rows").alias("rows"),
            F.sum(copies).alias("copies"),
            F.sum(F.when(mixed, F.col("__rows") - 1)).alias("extra"),
            F.count(F.when(mixed, F.lit(1))).alias("ids"),
            F.min(F.when(mixed, customer)).cast("string").alias("first"),
            F.max(F.when(mixed, customer)).cast("string").alias("last"),
        )
        .collect()
    )
    dropped = {row[REASON]: int(row["rows"]) for row in counts if row[REASON] is not None}
    ok = next((row for row in counts if row[REASON] is None), None)
    extra, ids, exact_copies = (int(ok["extra"] or 0), int(ok["ids"]), int(ok["copies"] or 0)) if ok else (0, 0, 0)
    examples = [] if ok is None or ok["first"] is None else sorted({ok["first"], ok["last"]})
    if features and ids:
        more_copies, extra = _copies_among_mixed_ids(reasoned, per_id.where(mixed).select(customer), id_col, digest)
        exact_copies += more_copies
    return RowCounts(
        input_rows=sum(int(row["rows"]) for row in counts),
        dropped=dict(sorted(dropped.items())),
        duplicate_rows=extra,
        duplicate_ids=ids,
        duplicate_examples=examples,
        exact_copies=exact_copies,
    )


def _feature_digest(features: tuple[str, ...]) -> Column:
    """A 64-bit hash of a row's features that tells apart what grouping by them tells apart.

    Each value is preceded by its null flag: Spark's hash skips nulls, which would make
    (null, x) and (x, null) alike. Spark hashes -0.0 as 0.0, as grouping treats them (NaN
    rows are never valid here).
    """
    return F.xxhash64(*[part for name in features for part in (column(name).isNull(), column(name))])


def _copies_among_mixed_ids(reasoned: DataFrame, mixed_ids: DataFrame, id_col: str, digest: Column) -> tuple[int, int]:
    """For the valid rows of ids whose rows differ: (exact copies, rows beyond each distinct row)."""
    customer = column(id_col)
    rows = reasoned.where(F.col(REASON).isNull()).join(mixed_ids, on=id_col, how="left_semi")
    per_variant = rows.groupBy(customer, digest.alias("__digest")).agg(F.count(F.lit(1)).alias("__n"))
    totals = per_variant.groupBy(customer).agg(F.sum("__n").alias("__rows"), F.count(F.lit(1)).alias("__variants"))
    row = totals.agg(
        F.sum(F.col("__rows") - F.col("__variants")).alias("copies"),
        F.sum(F.col("__variants") - 1).alias("extra"),
    ).first()
    return int(row["copies"] or 0), int(row["extra"] or 0)


def keep_valid(reasoned: DataFrame) -> DataFrame:
    return reasoned.where(F.col(REASON).isNull()).drop(REASON)


def count_duplicate_ids(clean: DataFrame, id_col: str) -> tuple[int, int, list]:
    """One pass: (rows beyond the first of their id, ids that repeat, up to 3 such ids)."""
    per_id = clean.groupBy(column(id_col).alias("id")).agg(F.count(F.lit(1)).alias("n"))
    repeated = per_id.where(F.col("n") > 1)
    summary = repeated.agg(
        F.coalesce(F.sum(F.col("n") - 1), F.lit(0)).alias("extra"),
        F.count(F.lit(1)).alias("ids"),
        F.slice(F.sort_array(F.collect_list(F.col("id").cast("string"))), 1, 3).alias("examples"),
    ).first()
    return int(summary["extra"]), int(summary["ids"]), list(summary["examples"] or [])


def one_row_per_id(id_col: str, features: tuple[str, ...], policy: str, categorical: tuple[str, ...] = ()):
    """``df.transform(one_row_per_id(...))`` for the keep_first and aggregate policies.

    keep_first keeps, of the rows of one id, the first in the order of its feature
    values (so the choice does not depend on how the input is split into files);
    aggregate averages each numeric feature over the id's rows and keeps the first
    (alphabetically) value of a categorical one.
    """

    def transform(df: DataFrame) -> DataFrame:
        customer = column(id_col)
        if policy == "keep_first":
            first = F.min(F.struct(*[column(f) for f in features])).alias("first")
            return df.groupBy(customer).agg(first).select(
                customer, *[F.col("first").getField(f).alias(f) for f in features]
            )
        if policy == "aggregate":
            return df.groupBy(customer).agg(
                *[(F.min if f in categorical else F.avg)(column(f)).alias(f) for f in features]
            )
        raise ValueError(f"no transformation for duplicate id policy {policy!r}")

    return transform


def is_invalid(name: str) -> Column:
    """Null, NaN, infinite or out of range: a feature value that cannot be clustered."""
    value = column(name)
    return value.isNull() | F.isnan(value) | (F.abs(value) > MAX_MAGNITUDE)


def feature_medians(df: DataFrame, features: tuple[str, ...]) -> dict[str, float]:
    """One pass: the approximate median of each feature over its valid values."""
    row = df.select(
        *[
            F.percentile_approx(F.when(~is_invalid(f), column(f)), 0.5, PERCENTILE_ACCURACY).alias(f)
            for f in features
        ]
    ).first()
    return {f: row[f] for f in features}


def impute(features: tuple[str, ...], medians: dict[str, float]):
    """``df.transform(impute(...))``: invalid feature values replaced by the feature's median."""

    def transform(df: DataFrame) -> DataFrame:
        types = {f.name: f.dataType for f in df.schema.fields}
        replaced = {
            f: F.when(is_invalid(f), F.lit(medians[f]).cast(types[f])).otherwise(column(f))
            for f in features
        }
        return df.withColumns(replaced)

    return transform


def _apply_invalid_values(reasoned, dropped: dict[str, int], cfg: InputConfig, numeric: tuple[str, ...]):
    """Applies ``input.invalid_values`` to rows with a null, unparseable, NaN or infinite feature.

    Returns (clean rows, reason -> rows dropped, imputation facts for the manifest).
    Rows with a null id are always dropped; so are rows with a log1p feature <= -1,
    unless the policy is fail (there is no median to put in their place that would
    not hide the problem).
    """
    id_reason = f"null {cfg.id_col}"
    feature_reasons = {r: n for r, n in dropped.items() if r != id_reason}
    policy = cfg.invalid_values
    if policy == "drop" or not feature_reasons:
        return keep_valid(reasoned), dropped, {}
    if policy == "fail":
        listed = ", ".join(f"{r}: {n}" for r, n in feature_reasons.items())
        raise InputError(
            f"{sum(feature_reasons.values())} rows of {cfg.path} have invalid feature values "
            f"({listed}); set input.invalid_values to drop or impute_median"
        )
    always = [id_reason, *[r for r in dropped if r.endswith(" (log1p)")]]
    imputed = {r: n for r, n in dropped.items() if r not in always}
    if not imputed:
        return keep_valid(reasoned), dropped, {}
    with_id = reasoned.where(F.col(REASON).isNull() | ~F.col(REASON).isin(always)).drop(REASON)
    medians = feature_medians(with_id, numeric)
    missing = [f for f, m in medians.items() if m is None]
    if missing:
        raise InputError(f"feature {missing[0]!r} has no valid value to take a median of")
    kept = {r: n for r, n in dropped.items() if r in always}
    return with_id.transform(impute(numeric, medians)), kept, {
        "policy": policy, "rows_by_first_reason": imputed, "medians": medians
    }


def _one_row_per_id(clean, clean_rows: int, cfg: InputConfig, dropped: dict[str, int], duplicates, categorical):
    """Applies ``input.duplicate_ids``; rows merged away are counted as ``duplicate id``.

    ``duplicates`` is (rows beyond the first of their id, ids that repeat, example ids).
    """
    id_col, policy = cfg.id_col, cfg.duplicate_ids
    extra, ids, examples = duplicates
    if extra == 0:
        return clean, clean_rows
    if policy == "fail":
        raise InputError(
            f"{ids} ids of {id_col!r} appear on more than one row ({extra} rows too many), "
            f"e.g. {', '.join(map(repr, examples))}; set input.duplicate_ids to keep_first or aggregate"
        )
    dropped["duplicate id"] = extra
    log.info("%s: %d rows merged into %d ids by duplicate_ids=%s", id_col, extra, ids, policy)
    merged = clean.transform(one_row_per_id(id_col, cfg.features, policy, categorical))
    return merged, clean_rows - extra

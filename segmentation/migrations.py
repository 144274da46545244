"""Stage 8b, migrations: where the previous run's customers went.

When a run carries on a lineage (segmentation/lineage.py), its labels are joined in Spark with
the previous run's labels on the customer id (a full outer join of two columns each; no id
reaches the driver), and counted by ``(from_segment, to_segment)``. Segment numbers are the
lineage's, so ``from_segment == to_segment`` means a customer kept their segment.

The ``migrations`` table has one row per pair that occurred:

- ``from_segment``, ``from_segment_name``: the previous run's segment (null: a new customer);
- ``to_segment``, ``to_segment_name``: this run's segment (null: a customer who is gone);
- ``customers``; ``share``: of the ``from_segment``'s previous customers (for new customers, of
  all new customers), so the shares of one ``from_segment`` add up to 1.

The manifest's ``migrations`` has the totals and ``stability``: the share of returning customers
(labelled in both runs) who kept their segment.
"""

from __future__ import annotations

from typing import Any, Optional

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from segmentation.label import SEGMENT, Segment
from segmentation.lineage import PreviousRun
from segmentation.publish import write_small_table
from segmentation.sql import column

FROM, TO = "from_segment", "to_segment"
MIGRATIONS_SCHEMA = (
    "from_segment INT, from_segment_name STRING, to_segment INT, to_segment_name STRING, "
    "customers LONG, share DOUBLE"
)


def track_migrations(
    spark: SparkSession, labels: DataFrame, id_col: str, segments: list[Segment],
    previous: Optional[PreviousRun], path: str,
) -> Optional[dict[str, Any]]:
    """Writes the ``migrations`` table at ``path`` and returns the manifest's ``migrations``;
    None (and nothing written) when the run starts a lineage."""
    if previous is None:
        return None
    counts = [(r[FROM], r[TO], int(r["customers"])) for r in count_moves(spark, labels, id_col, previous).collect()]
    names_before = {s.number: s.name for s in previous.segments}
    names_now = {s.number: s.name for s in segments}
    rows = migration_rows(counts, names_before, names_now)
    write_small_table(spark, rows, MIGRATIONS_SCHEMA, path)
    return summarise(counts)


def count_moves(spark: SparkSession, labels: DataFrame, id_col: str, previous: PreviousRun) -> DataFrame:
    """Customers per ``(from_segment, to_segment)``: one join and one aggregation in Spark."""
    id_type = labels.schema[id_col].dataType
    before = previous.read(spark, "labels").select(
        column(previous.id_col).cast(id_type).alias(id_col), F.col(SEGMENT).cast("int").alias(FROM)
    )
    now = labels.select(column(id_col), F.col(SEGMENT).cast("int").alias(TO))
    return before.join(now, on=id_col, how="full_outer").groupBy(FROM, TO).agg(F.count(F.lit(1)).alias("customers"))


def migration_rows(
    counts: list[tuple[Optional[int], Optional[int], int]], names_before: dict[int, str], names_now: dict[int, str]
) -> list[tuple]:
    """The table's rows, ordered by from and to segment (nulls last), with names and shares."""
    per_origin: dict[Optional[int], int] = {}
    for origin, _, customers in counts:
        per_origin[origin] = per_origin.get(origin, 0) + customers
    ordered = sorted(counts, key=lambda c: (c[0] is None, c[0] or 0, c[1] is None, c[1] or 0))
    return [
        (origin, names_before.get(origin), target, names_now.get(target), customers,
         customers / per_origin[origin])
        for origin, target, customers in ordered
    ]


def summarise(counts: list[tuple[Optional[int], Optional[int], int]]) -> dict[str, Any]:
    returning = sum(c for o, t, c in counts if o is not None and t is not None)
    stayed = sum(c for o, t, c in counts if o is not None and o == t)
    return {
        "previous_customers": sum(c for o, _, c in counts if o is not None),
        "customers": sum(c for _, t, c in counts if t is not None),
        "returning_customers": returning,
        "kept_segment": stayed,
        "new_customers": sum(c for o, _, c in counts if o is None),
        "gone_customers": sum(c for _, t, c in counts if t is None),
        "stability": stayed / returning if returning else None,
    }

"""Stage 3, sample: the rows the scaler, the sweep and the final model are fitted on.

All clean rows, or a uniform sample of about ``elbow.sample_rows`` of them. The
sample is drawn by a hash of the customer id, so the same customers are drawn
however the input is split into files, and all rows of one id fall on the same
side. The rows are placed and ordered by id over one partition per core and
cached once: every fit of the sweep reads them from memory.
"""

from __future__ import annotations

from typing import Optional

from pyspark.ml import PipelineModel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from segmentation.features import SCALED_VECTOR
from segmentation.sql import column

HASH_BUCKETS = 1 << 30


def draw_fit_rows(
    clean: DataFrame,
    clean_rows: int,
    id_col: str,
    features: tuple[str, ...],
    sample_rows: Optional[int],
    seed: int,
    partitions: int,
) -> tuple[DataFrame, int]:
    """The cached fit rows (features in original units) and their number: one pass over the input."""
    customer = column(id_col)
    data = clean
    if sample_rows is not None and clean_rows > sample_rows:
        keep = int(HASH_BUCKETS * sample_rows / clean_rows)
        data = data.where(F.pmod(F.xxhash64(customer, F.lit(seed)), F.lit(HASH_BUCKETS)) < keep)
    data = (
        data.repartition(partitions, customer)
        .sortWithinPartitions(customer)
        .select(*[column(f) for f in features])
        .cache()
    )
    return data, data.count()


def scale_fit_rows(feature_model: PipelineModel, rows: DataFrame, features: tuple[str, ...]) -> DataFrame:
    """The fit rows with their scaled vector, cached; ``rows`` is no longer cached afterwards."""
    data = (
        feature_model.transform(rows)
        .select(*[column(f) for f in features], SCALED_VECTOR)
        .cache()
    )
    data.count()
    rows.unpersist()
    return data

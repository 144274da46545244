"""Stage 6, fit and label: the saved segment model and the labels it gives every customer.

The segment model is one spark.ml ``PipelineModel``: assembler, scaler, the clustering
model (KMeans, BisectingKMeans or GaussianMixture) and a final ``SQLTransformer`` that
turns the cluster index into the run's segment
number, its name and the distance to its centroid. So scoring new customers later
is ``PipelineModel.load(path).transform(df)`` and nothing more.

Segment numbers are ordered by size: segment 0 is the largest cluster of the fit
(ties: the lower cluster index), so the numbering does not depend on the order in
which k-means happened to find the clusters.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.ml import PipelineModel
from pyspark.ml.feature import SQLTransformer
from pyspark.sql import DataFrame

from segmentation.features import Scaling
from segmentation.sql import column, sql_number, sql_string

SEGMENT = "segment"
SEGMENT_NAME = "segment_name"
DISTANCE = "distance"


@dataclass(frozen=True)
class Segment:
    number: int
    cluster: int  # the clustering model's cluster index behind it
    name: str
    centroid_z: tuple[float, ...]
    centroid: tuple[float, ...]  # in the features' own units (a share for a category)
    fitted_rows: int


def segments_by_size(
    centers_z: list[list[float]], sizes: list[int], scaling: Scaling, names_for
) -> list[Segment]:
    """Numbers the clusters by fitted size and names them with ``names_for(centroids_z)``."""
    order = sorted(range(len(sizes)), key=lambda c: (-sizes[c], c))
    centers = [list(map(float, centers_z[c])) for c in order]
    names = names_for(centers)
    return [
        Segment(
            number=n,
            cluster=c,
            name=names[n],
            centroid_z=tuple(centers[n]),
            centroid=tuple(scaling.original(centers[n])),
            fitted_rows=int(sizes[c]),
        )
        for n, c in enumerate(order)
    ]


def segment_stage(segments: list[Segment], scaling: Scaling, prediction_col: str) -> SQLTransformer:
    """The SQL step that maps cluster index to segment, name and distance (in z-units)."""
    number = " ".join(f"WHEN {s.cluster} THEN {s.number}" for s in segments)
    name = " ".join(f"WHEN {s.cluster} THEN {sql_string(s.name)}" for s in segments)
    squared = " ".join(
        f"WHEN {s.cluster} THEN {_squared_distance(s.centroid_z, scaling)}" for s in segments
    )
    statement = (
        f"SELECT *, CAST(CASE {prediction_col} {number} END AS INT) AS {SEGMENT}, "
        f"CASE {prediction_col} {name} END AS {SEGMENT_NAME}, "
        f"SQRT(CASE {prediction_col} {squared} END) AS {DISTANCE} FROM __THIS__"
    )
    return SQLTransformer(statement=statement)


def segment_model(
    feature_model: PipelineModel, cluster_model, segments: list[Segment], scaling: Scaling
) -> PipelineModel:
    stage = segment_stage(segments, scaling, cluster_model.getPredictionCol())
    return PipelineModel(stages=[*feature_model.stages, cluster_model, stage])


def label_customers(model: PipelineModel, id_col: str, columns: tuple[str, ...]):
    """``clean.transform(label_customers(...))``: id, segment, name, distance, then ``columns`` as given

    (the features in their own units, and any carried columns such as the RFM ones).
    """

    def transform(clean: DataFrame) -> DataFrame:
        return model.transform(clean).select(
            column(id_col),
            SEGMENT,
            SEGMENT_NAME,
            DISTANCE,
            *[column(name) for name in columns],
        )

    return transform


def write_labels(labels: DataFrame, path: str, max_rows_per_file: int) -> None:
    """The labels as Parquet partitioned by ``segment`` (the segment and score jobs' one layout)."""
    labels.write.option("maxRecordsPerFile", max_rows_per_file).partitionBy(SEGMENT).parquet(path)


def _squared_distance(centroid_z: tuple[float, ...], scaling: Scaling) -> str:
    terms = [
        f"POW(({d.sql()} - ({sql_number(mean)})) / ({sql_number(std)}) - ({sql_number(z)}), 2)"
        if std else f"POW({sql_number(z)}, 2)"  # a slot empty in the fit rows scales to 0
        for d, mean, std, z in zip(scaling.dimensions, scaling.mean, scaling.std, centroid_z)
    ]
    return " + ".join(terms)

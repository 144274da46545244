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
from typing import Optional

from pyspark.ml import PipelineModel
from pyspark.ml.clustering import KMeansModel
from pyspark.ml.feature import OneHotEncoderModel, SQLTransformer, VectorAssembler
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

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


def label_customers(model: PipelineModel, id_col: str, columns: tuple[str, ...],
                    segments: Optional[list[Segment]] = None, scaling: Optional[Scaling] = None):
    """``clean.transform(label_customers(...))``: id, segment, name, distance, then ``columns`` as given

    (the features in their own units, and any carried columns such as the RFM ones).

    With ``segments`` and ``scaling`` and a k-means model, the nearest segment is found in SQL
    (``nearest_segment``) on the columns the model's own transforms add, instead of through
    the assembler, the scaler and ``KMeansModel.transform``: no vector, no per-row UDF, one
    code-generated projection. It gives the labels the saved model gives (tested on every
    table the suite clusters), a customer equidistant from two centroids up to rounding aside.
    """

    def transform(clean: DataFrame) -> DataFrame:
        if segments is not None and scaling is not None and _clusters_by_nearest_centre(model):
            labelled = _transforms(model).transform(clean).transform(nearest_segment(segments, scaling))
        else:
            labelled = model.transform(clean)
        return labelled.select(
            column(id_col),
            SEGMENT,
            SEGMENT_NAME,
            DISTANCE,
            *[column(name) for name in columns],
        )

    return transform


def nearest_segment(segments: list[Segment], scaling: Scaling):
    """``df.transform(nearest_segment(...))``: ``df`` with the segment, its name and the distance
    (in z-units) of the nearest centroid, the arg-min over the K squared distances, ties to the
    lower cluster index as ``KMeansModel`` breaks them.

    The squared distances are columns of a projection of their own, which Spark does not
    collapse into the next (that would compute each several times): each is computed once a row.
    """
    by_cluster = sorted(segments, key=lambda s: s.cluster)
    squared = {f"__squared_{s.cluster}": F.expr(_squared_distance(s.centroid_z, scaling)) for s in by_cluster}

    def transform(df: DataFrame) -> DataFrame:
        distances = [F.col(name) for name in squared]
        nearest = F.least(*distances) if len(distances) > 1 else distances[0]
        number = F.when(distances[0] == nearest, F.lit(by_cluster[0].number))
        name = F.when(distances[0] == nearest, F.lit(by_cluster[0].name))
        for s, distance in zip(by_cluster[1:], distances[1:]):
            number = number.when(distance == nearest, F.lit(s.number))
            name = name.when(distance == nearest, F.lit(s.name))
        return (df.withColumns(squared)
                .withColumns({SEGMENT: number.cast("int"), SEGMENT_NAME: name, DISTANCE: F.sqrt(nearest)})
                .drop(*squared))

    return transform


def _clusters_by_nearest_centre(model: PipelineModel) -> bool:
    return any(isinstance(stage, KMeansModel) and stage.getDistanceMeasure() == "euclidean"
               for stage in model.stages)


def _transforms(model: PipelineModel) -> PipelineModel:
    """The model's steps before its assembler, but the one-hot encoding: the columns that
    ``Dimension.sql`` reads (transformed values, category indices)."""
    stages = []
    for stage in model.stages:
        if isinstance(stage, VectorAssembler):
            break
        if not isinstance(stage, OneHotEncoderModel):
            stages.append(stage)
    return PipelineModel(stages=stages)


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

"""Stage 3, build features: VectorAssembler then StandardScaler, fitted once.

The fitted steps are the first stages of the saved segment model, so scoring
new customers applies exactly the same scaling.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.feature import StandardScaler, VectorAssembler
from pyspark.sql import DataFrame

from segmentation.errors import InputError

log = logging.getLogger(__name__)

RAW_VECTOR = "features"
SCALED_VECTOR = "scaled_features"


@dataclass(frozen=True)
class Scaling:
    """Per-feature mean and standard deviation the scaler learned, in original units."""

    features: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    # False when the scaled vector is x / std, not (x - mean) / std (see fit_features).
    centered: bool = True

    def to_z(self, values: list[float]) -> list[float]:
        return [(v - m) / s for v, m, s in zip(values, self.mean, self.std)]

    def from_z(self, values: list[float]) -> list[float]:
        return [z * s + m for z, m, s in zip(values, self.mean, self.std)]

    def scaled_to_z(self, values: list[float]) -> list[float]:
        """A point of the scaled vector's space (e.g. a model's centre) in z-units."""
        if self.centered:
            return list(values)
        return [v - m / s for v, m, s in zip(values, self.mean, self.std)]

    def to_dict(self) -> dict[str, dict[str, float]]:
        return {
            name: {"mean": m, "std": s} for name, m, s in zip(self.features, self.mean, self.std)
        }


def feature_pipeline(features: tuple[str, ...], center: bool = True) -> Pipeline:
    return Pipeline(
        stages=[
            VectorAssembler(inputCols=list(features), outputCol=RAW_VECTOR),
            StandardScaler(inputCol=RAW_VECTOR, outputCol=SCALED_VECTOR, withMean=center, withStd=True),
        ]
    )


def fit_features(
    clean: DataFrame, features: tuple[str, ...], zero_variance: str = "error", center: bool = True
) -> tuple[PipelineModel, Scaling]:
    """Fits assembler and scaler (one pass).

    ``center=False`` scales without subtracting the mean. BisectingKMeans needs it: it
    splits a cluster by nudging its centre by 1e-4 of the centre's norm, so on centred
    data (root centre ~0) it cannot split at all and returns one cluster. K-means
    is translation-invariant, so the clusters are the same; ``Scaling.scaled_to_z``
    maps its centres back to z-units.

    A feature with zero variance (one value in every row) carries no information and
    cannot be scaled: an input error, or with ``zero_variance="drop"`` it is left out
    with a warning and the steps are fitted again on the others (``Scaling.features``
    says which remain).
    """
    model = feature_pipeline(features, center).fit(clean)
    scaler = model.stages[-1]
    scaling = Scaling(
        features,
        tuple(map(float, scaler.mean.toArray())),
        tuple(map(float, scaler.std.toArray())),
        center,
    )
    constant = [name for name, s in zip(features, scaling.std) if s == 0.0]
    if not constant:
        return model, scaling
    if zero_variance != "drop":
        raise InputError(
            f"feature {constant[0]!r} has zero variance (the same value in every row); "
            "remove it from --features or set input.zero_variance to drop"
        )
    kept = tuple(f for f in features if f not in constant)
    if not kept:
        raise InputError(f"every feature has zero variance: {', '.join(features)}")
    log.warning("dropping features with zero variance: %s", ", ".join(constant))
    return fit_features(clean, kept, zero_variance, center)

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

    def to_z(self, values: list[float]) -> list[float]:
        return [(v - m) / s for v, m, s in zip(values, self.mean, self.std)]

    def from_z(self, values: list[float]) -> list[float]:
        return [z * s + m for z, m, s in zip(values, self.mean, self.std)]

    def to_dict(self) -> dict[str, dict[str, float]]:
        return {
            name: {"mean": m, "std": s} for name, m, s in zip(self.features, self.mean, self.std)
        }


def feature_pipeline(features: tuple[str, ...]) -> Pipeline:
    return Pipeline(
        stages=[
            VectorAssembler(inputCols=list(features), outputCol=RAW_VECTOR),
            StandardScaler(inputCol=RAW_VECTOR, outputCol=SCALED_VECTOR, withMean=True, withStd=True),
        ]
    )


def fit_features(
    clean: DataFrame, features: tuple[str, ...], zero_variance: str = "error"
) -> tuple[PipelineModel, Scaling]:
    """Fits assembler and scaler (one pass).

    A feature with zero variance (one value in every row) carries no information and
    cannot be scaled: an input error, or with ``zero_variance="drop"`` it is left out
    with a warning and the steps are fitted again on the others (``Scaling.features``
    says which remain).
    """
    model = feature_pipeline(features).fit(clean)
    scaler = model.stages[-1]
    scaling = Scaling(
        features, tuple(map(float, scaler.mean.toArray())), tuple(map(float, scaler.std.toArray()))
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
    return fit_features(clean, kept, zero_variance)

"""Stage 4, build features: per-column transforms, VectorAssembler then StandardScaler, fitted once.

The transforms of ``input.transforms`` come first, all of them spark.ml stages:

- ``log1p`` and ``clip(LOW, HIGH)`` (at approximate quantiles of the fit rows, which
  become constants of the saved step) are one ``SQLTransformer`` that writes the
  transformed value of feature ``F`` to the column ``F__transformed``;
- ``one_hot``: ``StringIndexer`` (categories in alphabetical order; unseen values and
  nulls go to one extra index) then ``OneHotEncoder`` (one slot per category, plus the
  extra one), writing ``F__index`` and ``F__onehot``.

Each slot of the assembled vector is a *dimension*: a numeric feature, or one category
of a categorical feature (named ``F=value``, and ``F=(other)`` for the extra slot).
The fitted steps are the first stages of the saved segment model, so scoring new
customers applies exactly the same transforms and scaling.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any, Optional

from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.feature import (
    OneHotEncoder,
    SQLTransformer,
    StandardScaler,
    StringIndexer,
    StringIndexerModel,
    VectorAssembler,
)
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from segmentation.errors import InputError
from segmentation.parse import CLIP, LOG1P, Step, is_categorical
from segmentation.sql import quoted, sql_number

log = logging.getLogger(__name__)

RAW_VECTOR = "features"
SCALED_VECTOR = "scaled_features"
TRANSFORMED, INDEX, ONEHOT = "__transformed", "__index", "__onehot"
# spark.ml's stages read "a.b" as field b of a struct a, so a feature whose name has a dot
# reaches them under its name with the dots spelled out; the model's first step (SQL,
# where any name can be quoted) makes that column, so the user's names stay the names of
# the input, the labels, the profiles and the manifest.
DOT, SPELLED_DOT = ".", "__dot__"


def ml_name(feature: str) -> str:
    """The name spark.ml's stages know ``feature`` by (the feature's own unless it has a dot)."""
    return feature.replace(DOT, SPELLED_DOT)


def feature_name(ml: str) -> str:
    """The inverse of ``ml_name``."""
    return ml.replace(SPELLED_DOT, DOT)


def needs_ml_name(feature: str) -> bool:
    return ml_name(feature) != feature
OTHER = "(other)"
QUANTILE_ACCURACY = 10_000


@dataclass(frozen=True)
class Dimension:
    """One slot of the model's vector: a numeric feature, or one category of a categorical one."""

    name: str  # the feature, or "feature=category"
    feature: str
    column: str  # the column that holds its value before scaling
    category: Optional[float] = None  # one-hot: the value is 1 when column == category
    # Numeric: the fitted steps, e.g. [["clip", 1.0, 99.0], ["log1p"]] (clip bounds in values).
    steps: tuple[tuple[Any, ...], ...] = ()
    value: Optional[str] = None  # one-hot: the category's value in the input, or OTHER

    def sql(self) -> str:
        """Its value before scaling, as SQL over the columns the model's earlier stages add."""
        if self.category is not None:
            return f"CAST({quoted(self.column)} = {sql_number(self.category)} AS DOUBLE)"
        return f"CAST({quoted(self.column)} AS DOUBLE)"

    def to_original(self, value: float) -> float:
        """A value of this dimension in the feature's own units (log1p undone; a share for a category)."""
        for step in reversed(self.steps):
            if step[0] == LOG1P:
                value = math.expm1(value)
        return value

    def to_dict(self) -> dict[str, Any]:
        return {
            "feature": self.feature,
            "category": self.value,
            "steps": [list(s) for s in self.steps],
        }


@dataclass(frozen=True)
class Scaling:
    """Per-dimension mean and standard deviation the scaler learned, before scaling."""

    features: tuple[str, ...]  # the dimensions' names
    mean: tuple[float, ...]
    std: tuple[float, ...]
    # False when the scaled vector is x / std, not (x - mean) / std (see fit_features).
    centered: bool = True
    dimensions: tuple[Dimension, ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.dimensions:  # plain numeric features, no transforms
            object.__setattr__(self, "dimensions", tuple(Dimension(f, f, f) for f in self.features))

    def to_z(self, values: list[float]) -> list[float]:
        return [(v - m) / s if s else 0.0 for v, m, s in zip(values, self.mean, self.std)]

    def from_z(self, values: list[float]) -> list[float]:
        return [z * s + m for z, m, s in zip(values, self.mean, self.std)]

    def original(self, values_z: list[float]) -> list[float]:
        """A point in z-units (a centroid) in the features' own units."""
        return [d.to_original(v) for d, v in zip(self.dimensions, self.from_z(values_z))]

    def scaled_to_z(self, values: list[float]) -> list[float]:
        """A point of the scaled vector's space (e.g. a model's centre) in z-units."""
        if self.centered:
            return list(values)
        return [v - m / s if s else 0.0 for v, m, s in zip(values, self.mean, self.std)]

    def total_sum_of_squares(self, rows: int) -> float:
        """The scaled fit rows' sum of squared distances to their mean (the WSSSE of K = 1).

        The scaler learned its deviations (sample standard deviations) from exactly those
        ``rows`` rows, so every dimension with a non-zero deviation contributes rows - 1,
        whether or not the vector is centred; no pass over the rows is needed.
        """
        return float(max(rows - 1, 0) * sum(1 for s in self.std if s))

    @property
    def input_features(self) -> tuple[str, ...]:
        """The features behind the dimensions, in order."""
        return tuple(dict.fromkeys(d.feature for d in self.dimensions))

    @property
    def categorical(self) -> frozenset[str]:
        return frozenset(d.name for d in self.dimensions if d.category is not None)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {
            d.name: {"mean": m, "std": s, **d.to_dict()}
            for d, m, s in zip(self.dimensions, self.mean, self.std)
        }


def fit_features(
    clean: DataFrame,
    features: tuple[str, ...],
    zero_variance: str = "error",
    center: bool = True,
    steps: dict[str, tuple[Step, ...]] | None = None,
) -> tuple[PipelineModel, Scaling]:
    """Fits the transforms (``steps``, by feature, from ``parse_steps``), the assembler and
    the scaler on ``clean`` (the fit rows).

    ``center=False`` scales without subtracting the mean. BisectingKMeans needs it: it
    splits a cluster by nudging its centre by 1e-4 of the centre's norm, so on centred
    data (root centre ~0) it cannot split at all and returns one cluster. K-means
    is translation-invariant, so the clusters are the same; ``Scaling.scaled_to_z``
    maps its centres back to z-units.

    A feature with zero variance (one value in every row) carries no information and
    cannot be scaled: an input error, or with ``zero_variance="drop"`` it is left out
    with a warning and the steps are fitted again on the others (``Scaling`` says
    which remain). A category slot that is empty in the fit rows (the extra slot for
    unseen values, usually) is kept: it scales to 0.
    """
    spelled = [f for f in features if SPELLED_DOT in f]
    if spelled:
        raise InputError(f"feature name {spelled[0]!r} contains {SPELLED_DOT!r}, which the model uses "
                         "for '.' in names; rename the column")
    steps = {f: s for f, s in (steps or {}).items() if f in features}
    numeric_steps = {f: _fit_numeric_steps(clean, f, s) for f, s in steps.items() if not is_categorical(s)}
    categorical = [f for f in features if f in steps and is_categorical(steps[f])]
    # A numeric feature spark.ml cannot address goes through the SQL step unchanged.
    numeric_steps.update({f: () for f in features if needs_ml_name(f) and f not in steps})
    renamed = [f for f in categorical if needs_ml_name(f)]

    stages: list[Any] = []
    if numeric_steps or renamed:
        stages.append(SQLTransformer(statement=transform_statement(numeric_steps, renamed)))
    if categorical:
        stages.append(StringIndexer(
            inputCols=[ml_name(f) for f in categorical], outputCols=[ml_name(f) + INDEX for f in categorical],
            handleInvalid="keep", stringOrderType="alphabetAsc",
        ))
        stages.append(OneHotEncoder(
            inputCols=[ml_name(f) + INDEX for f in categorical],
            outputCols=[ml_name(f) + ONEHOT for f in categorical],
            dropLast=False,
        ))
    inputs = [
        ml_name(f) + ONEHOT if f in categorical else ml_name(f) + TRANSFORMED if f in numeric_steps else f
        for f in features
    ]
    stages.append(VectorAssembler(inputCols=inputs, outputCol=RAW_VECTOR, handleInvalid="skip"))
    stages.append(StandardScaler(inputCol=RAW_VECTOR, outputCol=SCALED_VECTOR, withMean=center, withStd=True))
    model = Pipeline(stages=stages).fit(clean)

    labels = {}
    if categorical:
        indexer = next(s for s in model.stages if isinstance(s, StringIndexerModel))
        labels = dict(zip(categorical, indexer.labelsArray))
    dimensions = []
    for f, column in zip(features, inputs):
        if f in labels:
            names = [*labels[f], OTHER]
            dimensions += [Dimension(f"{f}={v}", f, ml_name(f) + INDEX, float(i), (), v) for i, v in enumerate(names)]
        else:
            dimensions.append(Dimension(f, f, column, None, numeric_steps.get(f, ())))
    scaler = model.stages[-1]
    std = tuple(map(float, scaler.std.toArray()))
    scaling = Scaling(
        tuple(d.name for d in dimensions), tuple(map(float, scaler.mean.toArray())), std, center, tuple(dimensions)
    )
    constant = [
        f for f in features
        if all(s == 0.0 for d, s in zip(dimensions, std) if d.feature == f)
    ]
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
    return fit_features(clean, kept, zero_variance, center, steps)


def _fit_numeric_steps(clean: DataFrame, feature: str, steps: tuple[Step, ...]) -> tuple[tuple[Any, ...], ...]:
    """The steps with clip quantiles turned into values of the fit rows (one pass per clip)."""
    fitted: list[tuple[Any, ...]] = []
    for step in steps:
        if step.kind == CLIP:
            expression = F.expr(step_sql(f"CAST({quoted(feature)} AS DOUBLE)", tuple(fitted)))
            low, high = clean.select(
                F.percentile_approx(expression, [step.low, step.high], QUANTILE_ACCURACY).alias("q")
            ).first()["q"]
            fitted.append((CLIP, float(low), float(high)))
        else:
            fitted.append((step.kind,))
    return tuple(fitted)


def step_sql(value: str, steps: tuple[tuple[Any, ...], ...]) -> str:
    for step in steps:
        if step[0] == LOG1P:
            value = f"LOG1P({value})"
        elif step[0] == CLIP:
            value = f"LEAST(GREATEST({value}, {sql_number(step[1])}), {sql_number(step[2])})"
    return value


def transform_statement(numeric_steps: dict[str, tuple[tuple[Any, ...], ...]], renamed: list[str] = ()) -> str:
    """The SQLTransformer statement that adds ``F__transformed`` for each transformed numeric
    feature (and each one spark.ml cannot address), and a copy under ``ml_name`` of each
    categorical feature spark.ml cannot address."""
    columns = [
        f"{step_sql(f'CAST({quoted(f)} AS DOUBLE)', steps)} AS {quoted(ml_name(f) + TRANSFORMED)}"
        for f, steps in numeric_steps.items()
    ]
    columns += [f"{quoted(f)} AS {quoted(ml_name(f))}" for f in renamed]
    return f"SELECT *, {', '.join(columns)} FROM __THIS__"


def model_inputs(assembler_inputs: list[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(features, categorical features) of a saved model, from its VectorAssembler's input columns."""
    features, categorical = [], []
    for column in assembler_inputs:
        if column.endswith(ONEHOT):
            features.append(feature_name(column[: -len(ONEHOT)]))
            categorical.append(features[-1])
        elif column.endswith(TRANSFORMED):
            features.append(feature_name(column[: -len(TRANSFORMED)]))
        else:
            features.append(column)
    return tuple(features), tuple(categorical)

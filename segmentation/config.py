"""The job's configuration: one typed, validated object loaded from YAML.

Every setting has its default here and only here; ``conf/local.yaml`` and
``conf/cluster.yaml`` restate the ones that matter for each place, and the
command line overrides single keys (``--set elbow.parallelism=4``).
"""

from __future__ import annotations

import dataclasses
import datetime
import difflib
import os
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Optional

import yaml

from segmentation.errors import InputError
from segmentation.k_selection import RULES as K_RULES
from segmentation.parse import parse_steps  # the one reader of transform steps

INPUT_FORMATS = ("parquet", "csv", "json", "table")
INPUT_KINDS = ("customers", "transactions")
DUPLICATE_ROW_POLICIES = ("drop", "keep")
DUPLICATE_POLICIES = ("fail", "keep_first", "aggregate")
INVALID_VALUE_POLICIES = ("drop", "impute_median", "fail")
ZERO_VARIANCE_POLICIES = ("error", "drop")
INIT_MODES = ("k-means||", "random")
OUTPUT_FORMATS = ("parquet", "delta")
ELBOW_ENGINES = ("auto", "tasks", "spark_ml")
ALGORITHMS = ("kmeans", "bisecting", "gmm")
PREDICT_MODELS = ("auto", "bgnbd", "gbt", "bgnbd_seasonal")  # predict.MODELS and predict.SEASONAL


@dataclass(frozen=True)
class CsvOptions:
    # false: the first line is data; name the columns with ``columns`` (else _c0, _c1, ...).
    header: bool = True
    # One character; "whitespace" splits on runs of spaces and tabs (fixed-width exports).
    delimiter: str = ","
    quote: str = '"'
    # Column names, in file order: required without a header, and they replace a header's.
    columns: tuple[str, ...] = ()
    # Spark datetime patterns for inferring date and timestamp columns, e.g. dd/MM/yyyy.
    date_format: Optional[str] = None
    timestamp_format: Optional[str] = None


@dataclass(frozen=True)
class NumberTextConfig:
    """How a number stored as text is read: "$1,234.50" -> 1234.5 (see segmentation/parse.py)."""

    thousands: str = ","
    decimal: str = "."
    # Characters removed wherever they appear: currency signs and percent.
    symbols: str = "$€£¥%"


@dataclass(frozen=True)
class TransactionsConfig:
    """Columns of a transaction table (input.kind: transactions); the customer is input.id_col."""

    date_col: str = "date"
    amount_col: str = "amount"
    # Orders are counted by this column when given, else by distinct purchase dates.
    order_col: Optional[str] = None
    # A Spark datetime pattern for a text or number date column, e.g. yyyyMMdd.
    date_format: Optional[str] = None
    # Recency and tenure are counted to this date (YYYY-MM-DD); default: the last date plus one day.
    reference_date: Optional[str] = None


@dataclass(frozen=True)
class InputConfig:
    path: Optional[str] = None
    format: str = "parquet"
    # customers: one row per customer with its features; transactions: RFM features are built.
    kind: str = "customers"
    id_col: str = "customer_id"
    # For kind transactions the default is RFM_FEATURES, with RFM_TRANSFORMS.
    features: tuple[str, ...] = ("age", "annual_income", "spending", "purchase_frequency")
    # Per feature, steps applied in order before scaling, all stages of the saved model:
    # log1p, clip(LOW, HIGH) at approximate quantiles (e.g. clip(0.01, 0.99)), or one_hot
    # for a categorical column (StringIndexer then OneHotEncoder; unseen values and nulls
    # share one extra slot).
    transforms: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # Rows equal in the id and every feature: drop all but one (counted), or keep them.
    duplicate_rows: str = "drop"
    # Several rows for one id: fail (the default), keep_first (by feature order) or aggregate (mean).
    duplicate_ids: str = "fail"
    # A null, NaN or infinite feature value: drop the row (and count it), impute_median, or fail.
    invalid_values: str = "drop"
    # A feature with one value in every row: error, or drop it with a warning.
    zero_variance: str = "error"
    csv: CsvOptions = field(default_factory=CsvOptions)
    number_text: NumberTextConfig = field(default_factory=NumberTextConfig)
    transactions: TransactionsConfig = field(default_factory=TransactionsConfig)


RFM_FEATURES = ("recency_days", "frequency", "monetary")
RFM_COLUMNS = ("recency_days", "frequency", "monetary", "avg_order_value", "tenure_days")
RFM_TRANSFORMS = {"frequency": ("log1p",), "monetary": ("log1p",)}


@dataclass(frozen=True)
class OutputConfig:
    path: str = "output"
    # Upper bound on rows in one Parquet file of the labels (spark.sql.files.maxRecordsPerFile).
    max_rows_per_file: int = 5_000_000
    # parquet: the plain layout, each run swapped in whole; delta: Delta Lake tables, one
    # version per run, published through the runs table (segmentation/delta.py).
    format: str = "parquet"
    # delta: the runs whose files are kept (older versions are vacuumed).
    keep_runs: int = 10
    # delta: deltalake's storage options for an object store (credentials, locking, ...).
    storage_options: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class KConfig:
    min: int = 2
    max: int = 10
    # A fixed K skips automatic selection (the sweep still runs, for the elbow table).
    fixed: Optional[int] = None
    # How K is chosen (segmentation/k_selection.py): auto (silhouette candidates confirmed
    # by the elbow), elbow (two-line fit), silhouette, kneedle, relative_drop,
    # calinski_harabasz. For algorithm gmm the lowest BIC decides.
    rule: str = "auto"


@dataclass(frozen=True)
class ElbowConfig:
    # Where the sweep's fits run: tasks (every K's k-means runs inside one Spark task, on
    # the fit rows shipped to it), spark_ml (one distributed spark.ml fit per K and seed),
    # or auto: tasks for kmeans on at most task_max_rows fit rows, else spark_ml.
    engine: str = "auto"
    task_max_rows: int = 1_000_000
    # k-means++ runs per K in the tasks engine; the one with the lowest WSSSE is kept.
    task_seeds_per_k: int = 10
    # How many spark.ml fits run side by side (threads submitting Spark jobs).
    parallelism: int = 4
    # spark.ml fits per K with different seeds; the one with the lowest WSSSE is kept.
    seeds_per_k: int = 2
    # Rounds of refitting, with fresh seeds, the K whose WSSSE bumps the curve (0: never).
    repair_rounds: int = 2
    max_iter: int = 40
    tol: float = 1e-4
    # KMeans initialisation: k-means|| (spark.ml's default) or random; init_steps is k-means||'s.
    init_mode: str = "k-means||"
    init_steps: int = 2
    # The scaler, the sweep and the final model are fitted on a uniform sample of at most
    # this many rows (null: all rows, all cached); every row is then labelled in one pass.
    # Chosen by measurement: see BENCHMARKS.md, "Levers".
    sample_rows: Optional[int] = 50_000
    # The silhouette of each K is computed on at most this many rows of the fit rows.
    silhouette_rows: int = 20_000


@dataclass(frozen=True)
class ReportConfig:
    enabled: bool = True
    # Customers per segment drawn into the scatter plot, and into the dashboard's map and distributions.
    scatter_rows_per_segment: int = 400
    # Customers per segment the dashboard's top-customers table can show for each column it ranks by.
    top_customers: int = 100


@dataclass(frozen=True)
class LineageConfig:
    """How a run carries the segments of the run before it (segmentation/lineage.py)."""

    # null: the run published at output.path; a path: that run's output; "none": a new lineage.
    previous: Optional[str] = None
    # A new centroid further than this from every unmatched previous one (in the previous run's
    # z-units) is a new segment.
    match_limit_z: float = 1.0


@dataclass(frozen=True)
class DriftConfig:
    """When a run counts as drifted from the previous one (segmentation/drift.py)."""

    # A segment found again whose centroid moved more than this (previous run's z-units).
    centroid_shift_z: float = 0.25
    # A segment found again whose share of all customers changed by more than this (0.05 = 5 points).
    share_change: float = 0.05
    # A new or a retired segment is drift too.
    new_or_retired: bool = True
    # A drifted run publishes nothing and the job exits 3 (--fail-on-drift).
    fail_on_drift: bool = False


@dataclass(frozen=True)
class PredictConfig:
    """Predictions of each customer's next ``days`` (segmentation/predict.py); transactions only."""

    # The horizon in days (--predict-days); none: no predictions. 90 is a quarter.
    days: Optional[int] = None
    # auto: the backtest chooses (bgnbd, gbt, or with a year and three horizons of history
    # bgnbd_seasonal); bgnbd, gbt or bgnbd_seasonal: that model, where the history lets the
    # backtest score it (else bgnbd, with a warning and the reason in the manifest).
    model: str = "auto"
    # BG/NBD, Gamma-Gamma and the trees are fitted on at most this many customers, drawn at random.
    fit_customers: int = 200_000
    # The backtest's AUC, capture and calibration on at most this many (its totals on all).
    eval_customers: int = 200_000
    gbt_iterations: int = 30
    # churn_risk: high below the first p_purchase, medium below the second, else low.
    churn_high_below: float = 0.2
    churn_medium_below: float = 0.5


@dataclass(frozen=True)
class MlflowConfig:
    """Optional MLflow tracking of each segment run (segmentation/tracking.py; --mlflow)."""

    enabled: bool = False
    # null: MLFLOW_TRACKING_URI, else MLflow's default; e.g. sqlite:///mlflow.db, http://host:5000
    tracking_uri: Optional[str] = None
    experiment: str = "customer-segmentation"


@dataclass(frozen=True)
class SparkConfig:
    app_name: str = "customer-segmentation"
    # Passed to SparkSession.builder.config; spark-submit --conf wins over these.
    properties: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class JobConfig:
    input: InputConfig = field(default_factory=InputConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    k: KConfig = field(default_factory=KConfig)
    elbow: ElbowConfig = field(default_factory=ElbowConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    lineage: LineageConfig = field(default_factory=LineageConfig)
    drift: DriftConfig = field(default_factory=DriftConfig)
    predict: PredictConfig = field(default_factory=PredictConfig)
    mlflow: MlflowConfig = field(default_factory=MlflowConfig)
    spark: SparkConfig = field(default_factory=SparkConfig)
    seed: int = 42
    # kmeans (the default), bisecting (BisectingKMeans) or gmm (GaussianMixture, K by BIC).
    algorithm: str = "kmeans"

    def to_dict(self) -> dict[str, Any]:
        """The config as plain data for the manifest and MLflow: storage option values (credentials) hidden."""
        plain = _to_plain(dataclasses.asdict(self))
        plain["output"]["storage_options"] = {k: "***" for k in plain["output"]["storage_options"]}
        return plain


def load_config(path: str | None, overrides: dict[str, Any] | None = None) -> JobConfig:
    """Reads YAML at ``path`` (None: all defaults), applies dotted-key overrides, validates."""
    data: dict[str, Any] = {}
    if path is not None:
        resolved = resolve_config_path(path)
        try:
            with open(resolved, encoding="utf-8") as handle:
                data = yaml.safe_load(handle) or {}
        except yaml.YAMLError as exc:
            raise InputError(f"config {path} is not valid YAML: {' '.join(str(exc).split())}") from None
        if not isinstance(data, dict):
            raise InputError(f"config {path} must be a mapping of keys, not {type(data).__name__}")
    for dotted, value in (overrides or {}).items():
        _set_dotted(data, dotted, value)
    _kind_defaults(data)
    config = _build(JobConfig, data, "")
    validate(config)
    return config


def _kind_defaults(data: dict[str, Any]) -> None:
    """``input.features`` and ``input.transforms`` absent or null: the input kind's defaults.

    For customers those of InputConfig; for transactions RFM_FEATURES, and log1p on those
    of frequency and monetary that are features.
    """
    section = data.get("input")
    if not isinstance(section, dict):
        return
    transactions = section.get("kind") == "transactions"
    if section.get("features") is None:
        section.pop("features", None)
        if transactions:
            section["features"] = list(RFM_FEATURES)
    if section.get("transforms") is None:
        section.pop("transforms", None)
        if transactions:
            features = section.get("features")
            if isinstance(features, str):
                features = _list_items(features)
            section["transforms"] = {k: list(v) for k, v in RFM_TRANSFORMS.items() if k in (features or ())}


def resolve_config_path(path: str) -> str:
    """The config file as given, or, on a cluster, the copy ``--files`` put in the working directory."""
    if os.path.exists(path):
        return path
    shipped = os.path.basename(path)
    if os.path.exists(shipped):
        return shipped
    try:  # in cluster deploy mode the file is only reachable through SparkFiles
        from pyspark import SparkFiles

        candidate = SparkFiles.get(shipped)
        if os.path.exists(candidate):
            return candidate
    except Exception:  # noqa: BLE001 - no SparkContext yet: nothing more to try
        pass
    raise InputError(f"config file not found: {path}")


def parse_override(text: str) -> tuple[str, Any]:
    """``elbow.parallelism=4`` -> ("elbow.parallelism", 4); the value is read as YAML."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise InputError(f"--set expects KEY=VALUE, got {text!r}")
    text = raw.strip()
    if text.startswith("[") and text.endswith("]"):
        # A list: split as config lists are, so "[clip(0.01, 0.99)]" stays one step.
        return key.strip(), [_unquoted(item) for item in _list_items(text[1:-1])]
    try:
        value = yaml.safe_load(raw)
    except (yaml.YAMLError, ValueError):  # ValueError: a date-like value that is no date (2026-13-01)
        value = raw
    if isinstance(value, (datetime.date, datetime.datetime)):  # dates are config text (YYYY-MM-DD)
        value = text
    return key.strip(), value


def _unquoted(item: str) -> str:
    """A list item as text: YAML quotes removed ("a, b" -> a, b), anything else as written."""
    try:
        value = yaml.safe_load(item)
    except yaml.YAMLError:
        return item
    return value if isinstance(value, str) else item


def validate(config: JobConfig) -> None:
    """Cross-field rules that the types alone do not express."""
    k = config.k
    if k.min < 2:
        raise InputError(f"k.min must be at least 2, got {k.min}")
    if k.min > k.max:
        raise InputError(f"k.min ({k.min}) must not exceed k.max ({k.max})")
    if k.fixed is not None and not (k.min <= k.fixed <= k.max):
        raise InputError(f"k.fixed ({k.fixed}) must lie within k.min..k.max ({k.min}..{k.max})")
    for key, value, allowed in (
        ("input.format", config.input.format, INPUT_FORMATS),
        ("input.kind", config.input.kind, INPUT_KINDS),
        ("input.duplicate_rows", config.input.duplicate_rows, DUPLICATE_ROW_POLICIES),
        ("input.duplicate_ids", config.input.duplicate_ids, DUPLICATE_POLICIES),
        ("input.invalid_values", config.input.invalid_values, INVALID_VALUE_POLICIES),
        ("input.zero_variance", config.input.zero_variance, ZERO_VARIANCE_POLICIES),
        ("elbow.init_mode", config.elbow.init_mode, INIT_MODES),
        ("elbow.engine", config.elbow.engine, ELBOW_ENGINES),
        ("algorithm", config.algorithm, ALGORITHMS),
        ("k.rule", config.k.rule, K_RULES),
        ("output.format", config.output.format, OUTPUT_FORMATS),
        ("predict.model", config.predict.model, PREDICT_MODELS),
    ):
        if value not in allowed:
            raise InputError(f"{key} must be one of {', '.join(allowed)}, got {value!r}")
    if not config.input.features:
        raise InputError("input.features must name at least one column")
    duplicated = sorted({f for f in config.input.features if config.input.features.count(f) > 1})
    if duplicated:
        raise InputError(f"input.features names a column more than once: {', '.join(duplicated)}")
    for name in (config.input.id_col, *config.input.features):
        if "`" in name:
            raise InputError(f"column name {name!r} contains a backtick, which Spark cannot address; rename it")
    if config.input.id_col in config.input.features:
        raise InputError(f"input.id_col {config.input.id_col!r} is also listed as a feature")
    _validate_input_shape(config.input)
    positive = {
        "elbow.parallelism": config.elbow.parallelism,
        "elbow.seeds_per_k": config.elbow.seeds_per_k,
        "elbow.task_seeds_per_k": config.elbow.task_seeds_per_k,
        "elbow.task_max_rows": config.elbow.task_max_rows,
        "elbow.max_iter": config.elbow.max_iter,
        "elbow.init_steps": config.elbow.init_steps,
        "elbow.silhouette_rows": config.elbow.silhouette_rows,
        "output.max_rows_per_file": config.output.max_rows_per_file,
        "output.keep_runs": config.output.keep_runs,
        "report.scatter_rows_per_segment": config.report.scatter_rows_per_segment,
        "report.top_customers": config.report.top_customers,
        "predict.fit_customers": config.predict.fit_customers,
        "predict.eval_customers": config.predict.eval_customers,
        "predict.gbt_iterations": config.predict.gbt_iterations,
    }
    if config.predict.days is not None:
        positive["predict.days"] = config.predict.days
        if config.input.kind != "transactions":
            raise InputError(
                "predictions need transactions (dates and amounts): --predict-days cannot be used with a "
                "customer table; give --input-kind transactions"
            )
    if not 0 < config.predict.churn_high_below <= config.predict.churn_medium_below < 1:
        raise InputError("predict.churn_high_below and churn_medium_below must satisfy 0 < high <= medium < 1")
    if config.elbow.sample_rows is not None:
        positive["elbow.sample_rows"] = config.elbow.sample_rows
    for key, value in positive.items():
        if value < 1:
            raise InputError(f"{key} must be at least 1, got {value}")
    if config.elbow.repair_rounds < 0:
        raise InputError(f"elbow.repair_rounds must be 0 or more, got {config.elbow.repair_rounds}")
    if config.elbow.engine == "tasks" and config.algorithm != "kmeans":
        raise InputError(f"elbow.engine tasks runs kmeans only; algorithm {config.algorithm} needs spark_ml or auto")
    for key, value in (("lineage.match_limit_z", config.lineage.match_limit_z),
                       ("drift.centroid_shift_z", config.drift.centroid_shift_z),
                       ("drift.share_change", config.drift.share_change)):
        if not value >= 0:
            raise InputError(f"{key} must be 0 or more, got {value}")
    if config.elbow.tol <= 0:
        raise InputError(f"elbow.tol must be positive, got {config.elbow.tol}")


def _validate_input_shape(cfg: InputConfig) -> None:
    for name, steps in cfg.transforms.items():
        if name not in cfg.features:
            raise InputError(f"input.transforms.{name}: {name!r} is not one of input.features")
        parse_steps(name, steps)
    csv = cfg.csv
    if csv.delimiter != "whitespace" and len(csv.delimiter) != 1:
        raise InputError(f"input.csv.delimiter must be one character or whitespace, got {csv.delimiter!r}")
    if cfg.format == "csv" and csv.delimiter == "whitespace" and not csv.header and not csv.columns:
        raise InputError("input.csv.columns must name the columns of a whitespace file without a header")
    if len(set(csv.columns)) != len(csv.columns):
        raise InputError("input.csv.columns names a column more than once")
    text = cfg.number_text
    if len(text.decimal) != 1 or text.decimal == text.thousands:
        raise InputError("input.number_text.decimal must be one character, not the thousands separator")
    if cfg.kind == "transactions":
        tx = cfg.transactions
        named = [cfg.id_col, tx.date_col, tx.amount_col] + ([tx.order_col] if tx.order_col else [])
        if len(set(named)) != len(named):
            raise InputError("the customer, date, amount and order columns must be different columns")
        unknown = [f for f in cfg.features if f not in RFM_COLUMNS]
        if unknown:
            raise InputError(
                f"feature {unknown[0]!r} is not an RFM column; with input.kind transactions "
                f"features are chosen from {', '.join(RFM_COLUMNS)}"
            )
        if tx.reference_date is not None:
            try:
                datetime.date.fromisoformat(tx.reference_date)
            except ValueError:
                raise InputError(
                    f"input.transactions.reference_date must be YYYY-MM-DD, got {tx.reference_date!r}"
                ) from None


# --- building typed objects from plain data -------------------------------------------------


def _build(cls: type, data: Any, prefix: str) -> Any:
    if not isinstance(data, dict):
        raise InputError(f"config key {prefix.rstrip('.') or '<root>'} must be a mapping")
    hints = typing.get_type_hints(cls)
    known = [f.name for f in dataclasses.fields(cls)]
    for key in data:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f"; did you mean {prefix}{close[0]}?" if close else f"; known keys: {', '.join(known)}"
            raise InputError(f"unknown config key {prefix}{key}{hint}")
    values = {}
    for name in known:
        if name in data:
            values[name] = _coerce(hints[name], data[name], f"{prefix}{name}")
    return cls(**values)


def _coerce(hint: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(inner[0], value, key)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value if value is not None else {}, f"{key}.")
    if origin is tuple:
        if isinstance(value, str):
            value = _list_items(value)
        if not isinstance(value, (list, tuple)):
            raise InputError(f"config key {key} must be a list, got {value!r}")
        return tuple(_coerce(args[0], item, key) for item in value)
    if origin is dict:
        if not isinstance(value, dict):
            raise InputError(f"config key {key} must be a mapping, got {value!r}")
        if args[1] is str:
            return {str(k): _spark_value(v) for k, v in value.items()}
        return {str(k): _coerce(args[1], v, f"{key}.{k}") for k, v in value.items()}
    if hint is bool:
        if not isinstance(value, bool):
            raise InputError(f"config key {key} must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InputError(f"config key {key} must be a whole number, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InputError(f"config key {key} must be a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise InputError(f"config key {key} must be text, got {value!r}")
        return value
    raise TypeError(f"unsupported config type {hint!r} for {key}")  # a bug in this module


def _list_items(text: str) -> list[str]:
    """``"a, b"`` or ``"clip(0.01, 0.99), log1p"`` as a list: commas in brackets or quotes stay."""
    return [part.strip() for part in re.split(r""",(?![^()]*\))(?=(?:[^"']*["'][^"']*["'])*[^"']*$)""", text)
            if part.strip()]


def _spark_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    # Spark property names and column names contain dots: everything after spark.properties.
    # or input.transforms. is one key.
    if parts[:2] in (["spark", "properties"], ["input", "transforms"]) and len(parts) > 2:
        parts = parts[:2] + [".".join(parts[2:])]
    node = data
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:  # a section given as null (conf/local.yaml's transforms) is an empty one
            child = node[part] = {}
        if not isinstance(child, dict):
            raise InputError(f"config key {dotted}: {part} is not a section")
        node = child
    node[parts[-1]] = value


def _to_plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_plain(v) for v in value]
    return value

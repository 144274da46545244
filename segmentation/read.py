"""Stage 1, read: the customer table as a DataFrame of the id and the numeric features."""

from __future__ import annotations

import os
import re
from urllib.parse import urlparse

from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from segmentation.config import InputConfig
from segmentation.errors import InputError


def read_customers(spark: SparkSession, cfg: InputConfig) -> DataFrame:
    """Reads ``cfg.path`` in ``cfg.format``; CSV with its header and inferred column types."""
    if cfg.path is None:
        raise InputError("no input given: set input.path in the config or pass --input")
    if cfg.format != "table":
        _check_local_path(cfg.path)
    try:
        if cfg.format == "table":
            return spark.read.table(cfg.path)
        if cfg.format == "csv":
            return _read_csv(spark, cfg)
        return spark.read.format(cfg.format).load(cfg.path)
    except AnalysisException as exc:
        raise InputError(f"cannot read {cfg.format} input {cfg.path}: {_first_line(exc)}") from None
    except Exception as exc:  # schema inference reads footers: a corrupt file can fail here
        error = unreadable_file(exc, cfg.format)
        if error is None:
            raise
        raise error from None


def _read_csv(spark: SparkSession, cfg: InputConfig) -> DataFrame:
    """Column types inferred, except the id, which stays text: ``0001`` keeps its zeros."""
    reader = (
        spark.read.option("header", cfg.csv.header)
        .option("sep", cfg.csv.delimiter)
        .option("quote", cfg.csv.quote)
    )
    inferred = reader.option("inferSchema", True).csv(cfg.path).schema
    schema = T.StructType(
        [
            T.StructField(f.name, T.StringType(), True) if f.name == cfg.id_col else f
            for f in inferred.fields
        ]
    )
    return reader.schema(schema).csv(cfg.path)


def select_features(df: DataFrame, id_col: str, features: tuple[str, ...]) -> DataFrame:
    """Keeps the id and the features, in their own types; names a missing or non-numeric column."""
    available = df.columns
    for name in (id_col, *features):
        if name not in available:
            listed = ", ".join(available)
            raise InputError(f"column {name!r} not found in the input; it has: {listed}")
    types = {f.name: f.dataType for f in df.schema.fields}
    for name in features:
        if not isinstance(types[name], T.NumericType):
            raise InputError(
                f"feature {name!r} is not numeric (type {types[name].simpleString()}); "
                "choose numeric columns with --features"
            )
    return df.select(
        F.col(_quoted(id_col)),
        *[F.col(_quoted(name)) for name in features],
    )


_UNREADABLE = re.compile(r"\[FAILED_READ_FILE[.\w]*\] Encountered error while reading file (\S+?)\.(\s|$)")


def unreadable_file(exc: BaseException, fmt: str) -> InputError | None:
    """The input error for a Spark failure to read one input file (a corrupt Parquet file), or None."""
    match = _UNREADABLE.search(str(exc))
    if match is None:
        return None
    return InputError(f"cannot read input file {match.group(1)}: it is corrupt or not {fmt}")


def is_local_path(path: str) -> bool:
    scheme = urlparse(path).scheme
    return scheme in ("", "file") or (len(scheme) == 1 and os.name == "nt")


def local_path(path: str) -> str:
    return urlparse(path).path if path.startswith("file:") else path


def _check_local_path(path: str) -> None:
    """Fails early and clearly on a local path; remote paths are left to Spark's reader."""
    if not is_local_path(path):
        return
    local = local_path(path)
    if not os.path.exists(local):
        raise InputError(f"input not found: {path}")
    if not os.access(local, os.R_OK):
        raise InputError(f"input not readable: {path}")
    if os.path.isdir(local):
        visible = [n for n in os.listdir(local) if not n.startswith((".", "_"))]
        if not visible:
            raise InputError(f"input directory is empty: {path}")


def _quoted(name: str) -> str:
    return f"`{name}`"


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__

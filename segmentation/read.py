"""Stage 1, read: the input table (customers or transactions) as a DataFrame, columns as named.

CSV is read with its header or with given column names, any one-character delimiter,
or runs of white space (``delimiter: whitespace``, for fixed-width exports); column
types are inferred, except the id, which stays text (``0001`` keeps its zeros).
"""

from __future__ import annotations

import os
import re
from urllib.parse import urlparse

from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from segmentation.config import InputConfig
from segmentation.errors import InputError, first_line
from segmentation.parse import is_blank
from segmentation.sql import column


def read_input(spark: SparkSession, cfg: InputConfig) -> DataFrame:
    """Reads ``cfg.path`` in ``cfg.format``; CSV by ``cfg.csv`` (see the module doc)."""
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
        raise InputError(f"cannot read {cfg.format} input {cfg.path}: {first_line(exc)}") from None
    except Exception as exc:  # schema inference reads footers: a corrupt file can fail here
        error = unreadable_file(exc, cfg.format)
        if error is None:
            raise
        raise error from None


def _read_csv(spark: SparkSession, cfg: InputConfig) -> DataFrame:
    """Column types inferred, except the id, which stays text: ``0001`` keeps its zeros."""
    csv = cfg.csv
    if csv.delimiter == "whitespace":
        return _read_whitespace(spark, cfg)
    reader = spark.read.option("header", csv.header).option("sep", csv.delimiter).option("quote", csv.quote)
    for option, value in (("dateFormat", csv.date_format), ("timestampFormat", csv.timestamp_format)):
        if value is not None:
            reader = reader.option(option, value)
    inferred = reader.option("inferSchema", True).csv(cfg.path).schema
    if csv.columns:
        if len(csv.columns) != len(inferred.fields):
            raise InputError(
                f"input.csv.columns names {len(csv.columns)} columns but {cfg.path} has {len(inferred.fields)}"
            )
        inferred = T.StructType([T.StructField(n, f.dataType, True) for n, f in zip(csv.columns, inferred.fields)])
    schema = T.StructType(
        [
            T.StructField(f.name, T.StringType(), True) if f.name == cfg.id_col else f
            for f in inferred.fields
        ]
    )
    # With a header, Spark matches the given schema to the columns by position.
    return reader.option("enforceSchema", True).schema(schema).csv(cfg.path)


def _read_whitespace(spark: SparkSession, cfg: InputConfig) -> DataFrame:
    """Fields split on runs of spaces and tabs; every column is text (numbers are read by the clean stage)."""
    lines = spark.read.text(cfg.path).where(~is_blank(F.col("value")))
    fields = F.split(F.regexp_replace(F.col("value"), r"^\s+|\s+$", ""), r"\s+")
    names = list(cfg.csv.columns)
    if cfg.csv.header:
        first = lines.first()
        header = first["value"].split() if first is not None else []
        names = names or header
        lines = lines.where(F.col("value") != first["value"]) if first is not None else lines
    if not names:
        raise InputError(f"input {cfg.path} has no header line to name its columns")
    return lines.select(*[fields.getItem(i).alias(n) for i, n in enumerate(names)])


def select_features(
    df: DataFrame,
    id_col: str,
    features: tuple[str, ...],
    categorical: tuple[str, ...] = (),
    carry: tuple[str, ...] = (),
) -> DataFrame:
    """The id, the features and the ``carry`` columns, in their own types.

    A feature must be numeric, or text (read as numbers by the clean stage), unless it is
    ``categorical`` (one-hot encoded). A missing column is named, with the ones there are.
    """
    available = df.columns
    for name in (id_col, *features, *carry):
        if name not in available:
            listed = ", ".join(available)
            raise InputError(f"column {name!r} not found in the input; it has: {listed}")
    types = {f.name: f.dataType for f in df.schema.fields}
    for name in features:
        if name not in categorical and not isinstance(types[name], (T.NumericType, T.StringType)):
            raise InputError(
                f"feature {name!r} is not numeric (type {types[name].simpleString()}); "
                "choose numeric columns with --features"
            )
    return df.select(
        column(id_col),
        *[column(name) for name in (*features, *carry)],
    )


def text_columns(df: DataFrame, names: tuple[str, ...]) -> tuple[str, ...]:
    """Those of ``names`` that hold text."""
    types = {f.name: f.dataType for f in df.schema.fields}
    return tuple(n for n in names if isinstance(types[n], T.StringType))


# How Spark names the file it failed to read: 4.x's error class, then 3.5's two messages (a
# file whose checksum no longer matches, and one that is not Parquet).
_UNREADABLE = (
    re.compile(r"\[FAILED_READ_FILE[.\w]*\] Encountered error while reading file (\S+?)\.(\s|$)"),
    re.compile(r"ChecksumException: Checksum error: (\S+) at \d+"),
    re.compile(r"RuntimeException: (\S+) is not a Parquet file\."),
)


def unreadable_file(exc: BaseException, fmt: str) -> InputError | None:
    """The input error for a Spark failure to read one input file (a corrupt Parquet file), or None."""
    message = str(exc)
    match = next((m for m in (p.search(message) for p in _UNREADABLE) if m), None)
    if match is None:
        return None
    path = match.group(1)
    suffix = os.path.splitext(path.lower())[1].lstrip(".")
    hint = f" (its name ends in .{suffix}: pass --input-format {suffix})" if suffix in ("csv", "json") and \
        suffix != fmt else ""
    return InputError(f"cannot read input file {path}: it is corrupt or not {fmt}{hint}")


def is_local_path(path: str) -> bool:
    scheme = urlparse(path).scheme
    return scheme in ("", "file") or (len(scheme) == 1 and os.name == "nt")


def local_path(path: str) -> str:
    return urlparse(path).path if path.startswith("file:") else path


def is_hidden(name: str) -> bool:
    """A file Spark and Hadoop write beside the data (``_SUCCESS``, ``.part-0.crc``): no reader reads it."""
    return name.startswith((".", "_"))


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
        visible = [n for n in os.listdir(local) if not is_hidden(n)]
        if not visible:
            raise InputError(f"input directory is empty: {path}")

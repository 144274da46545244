"""A fuzzing battery: whatever a user feeds the segment command, it exits 0 with a publish
that satisfies the output contract, or 2 with exactly one ``error:`` line and no traceback,
and a failed run leaves the previous publish byte-identical.

The command's ``main()`` runs in-process on the suite's session (the command takes the
caller's active session and never stops it), so an example costs one job, not a JVM.
``make test`` runs a bounded number of examples; ``make fuzz`` (FUZZ_EXAMPLES=N) thousands.
"""

from __future__ import annotations

import contextlib
import io
import json
import os

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segmentation.cli import report_error
from segmentation.config import load_config, parse_override
from segmentation.errors import InputError

from conftest import run_segment as run
from test_cli import digest

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "0")) or None
FUZZ = settings(max_examples=EXAMPLES or 12, deadline=None, derandomize=EXAMPLES is None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])
CONFIG_FUZZ = settings(max_examples=(EXAMPLES or 40) * 10, deadline=None, derandomize=EXAMPLES is None)

NAMES = st.sampled_from(["id", "age", "spend", "visits", "stats.spend", "Annual Income (k$)", "naïve €", "",
                         "a b", "x;y", '"q"', "spend"])
NUMBER_TEXT = st.one_of(
    st.integers(-10**6, 10**6).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["NaN", "nan", "inf", "-inf", "Infinity", "-Infinity", "1e308", "-1e308", "1e-320", "1,234.5",
                     "1.234,5", "1 234,5", "$19.99", "(12.50)", "12%", "", " ", "null", "NULL", "N/A", "—", "٣٤",
                     "0x1F", "1e400", "+5", ".5", "5.", "--1"]),
    st.text(max_size=6),
)


@st.composite
def tables(draw):
    """Column names (possibly duplicated or blank) and rows of text cells, ids possibly null or repeated."""
    columns = draw(st.lists(NAMES, min_size=1, max_size=5))
    if draw(st.booleans()):
        columns = ["id", *columns]
    rows = draw(st.integers(0, 60))
    constant = draw(st.sampled_from([None, "7", ""]))
    cells = []
    for r in range(rows):
        row = []
        for c, name in enumerate(columns):
            if name == "id":
                row.append(draw(st.sampled_from([str(r), str(r), str(r % 5), ""])))
            elif constant is not None and c == len(columns) - 1:
                row.append(constant)
            elif draw(st.integers(0, 4)) == 0:
                row.append(draw(NUMBER_TEXT))
            else:
                row.append(str(draw(st.integers(0, 3)) * 40 + draw(st.integers(0, 9))))
        cells.append(row)
    return columns, cells


@st.composite
def input_files(draw, directory):
    """A CSV (odd delimiters, quoting, encodings, BOM, CRLF), JSON lines, Parquet or random bytes."""
    kind = draw(st.sampled_from(["csv", "csv", "json", "parquet", "bytes"]))
    columns, cells = draw(tables())
    path = os.path.join(directory, f"input.{kind}")
    options: list[str] = []
    if kind == "bytes":
        with open(path, "wb") as handle:
            handle.write(draw(st.binary(max_size=400)))
        kind = draw(st.sampled_from(["csv", "json", "parquet"]))
    elif kind == "csv":
        delimiter = draw(st.sampled_from([",", ";", "\t", "|"]))
        newline = draw(st.sampled_from(["\n", "\r\n"]))
        encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "latin-1", "utf-16"]))
        header = draw(st.booleans()) or not cells
        lines = ([delimiter.join(_quoted(c, delimiter) for c in columns)] if header else []) + [
            delimiter.join(_quoted(c, delimiter) for c in row) for row in cells]
        with open(path, "wb") as handle:
            handle.write(newline.join(lines).encode(encoding, errors="replace"))
        if delimiter != ",":
            options += ["--set", f"input.csv.delimiter={json.dumps(delimiter)}"]
        if not header:
            options += ["--set", "input.csv.header=false"]
    elif kind == "json":
        with open(path, "w", encoding="utf-8") as handle:
            for row in cells:
                handle.write(json.dumps(dict(zip(columns, [_json_value(v) for v in row]))) + "\n")
    else:
        names = list(dict.fromkeys(c or "blank" for c in columns))
        data = {n: [_number_or_none(row[i]) if n != "id" else row[i] for row in cells]
                for i, n in enumerate(names) if i < len(columns)}
        pq.write_table(pa.table({n: pa.array(v, type=pa.string() if n == "id" else pa.float64())
                                 for n, v in data.items()}), path)
    features = [c for c in dict.fromkeys(columns) if c != "id"] or ["spend"]
    chosen = draw(st.lists(st.sampled_from(features), min_size=1, max_size=len(features), unique=True))
    return path, kind, chosen, options


def _quoted(cell: str, delimiter: str) -> str:
    if any(ch in cell for ch in (delimiter, '"', "\n", "\r")):
        return '"' + cell.replace('"', '""') + '"'
    return cell


def _json_value(cell: str):
    number = _number_or_none(cell)
    return cell if number is None else number


def _number_or_none(cell: str):
    try:
        return float(cell)
    except ValueError:
        return None


@pytest.fixture(scope="module")
def publish(spark, tmp_path_factory, customers_path):
    """A published output that every failed example must leave byte-identical."""
    output = str(tmp_path_factory.mktemp("fuzz") / "segments")
    code, _ = run(["--input", customers_path, "--output", output, "--k-max", "4", "--no-report"])
    assert code == 0
    return output


def check_outcome(code: int, stderr: str, output: str, before: str) -> str:
    """The battery's invariant; returns the publish digest to compare the next example with."""
    assert "Traceback" not in stderr, stderr[-3000:]
    if code == 2:
        errors = [line for line in stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1, stderr[-3000:]
        assert digest(output) == before, "a failed run changed the last publish"
        return before
    assert code == 0, stderr[-3000:]
    manifest = json.load(open(os.path.join(output, "manifest.json")))
    assert manifest["schema_version"] == 9
    assert os.path.exists(os.path.join(output, "_SUCCESS"))
    labels = pd.read_parquet(os.path.join(output, "labels"))
    assert len(labels) == manifest["labelled_rows"] == manifest["input_rows"] - sum(manifest["dropped_rows"].values())
    assert labels["segment"].nunique() == manifest["chosen_k"]
    profiles = pd.read_parquet(os.path.join(output, "profiles"))
    assert int(profiles["customers"].sum()) == manifest["labelled_rows"]
    return digest(output)


@FUZZ
@given(data=st.data())
def test_any_input_file_exits_0_with_a_valid_publish_or_2_with_one_error_line(spark, publish, tmp_path_factory, data):
    directory = str(tmp_path_factory.mktemp("example"))
    path, kind, features, options = data.draw(input_files(directory))
    before = digest(publish)
    policy = data.draw(st.sampled_from([[], ["--set", "input.invalid_values=impute_median"],
                                        ["--set", "input.duplicate_ids=keep_first"],
                                        ["--set", "input.zero_variance=drop"]]))
    code, stderr = run(["--input", path, "--input-format", kind, "--id-col", "id", "--features", ",".join(features),
                        "--output", publish, "--k-min", "2", "--k-max", "3", "--no-report", *options, *policy])
    check_outcome(code, stderr, publish, before)


SET_KEYS = st.one_of(
    st.sampled_from(["k.min", "k.max", "k.fixed", "k.rule", "elbow.sample_rows", "elbow.tol", "elbow.engine",
                     "input.features", "input.transforms.age", "input.transforms", "input.csv.delimiter",
                     "input.number_text.decimal", "report.enabled", "seed", "algorithm", "spark.properties.x.y",
                     "input.transactions.reference_date", "output.max_rows_per_file", "input", "k", ""]),
    st.text(max_size=20),
)
SET_VALUES = st.one_of(
    st.sampled_from(["2", "-1", "0", "1e9", "null", "true", "[]", "[log1p]", "[clip(0.01, 0.99)]", "[clip(0.9, 0.1)]",
                     "{a: 1}", "auto", "tasks", "gmm", "x", "2026-13-01", ";", "whitespace", "[a, a]", "'", "{", ":"]),
    st.text(max_size=20),
)


@CONFIG_FUZZ
@given(st.lists(st.tuples(SET_KEYS, SET_VALUES), max_size=4))
def test_any_set_option_gives_a_valid_config_or_one_input_error(pairs):
    try:
        config = load_config("conf/local.yaml", dict(parse_override(f"{k}={v}") for k, v in pairs))
    except InputError as exc:
        printed = io.StringIO()
        with contextlib.redirect_stderr(printed):
            assert report_error(exc) == 2
        assert printed.getvalue().count("\n") == 1 and printed.getvalue().startswith("error: ") and str(exc)
        return
    assert config.k.min <= config.k.max


def test_the_command_keeps_the_callers_session(spark, publish):
    # The battery relies on it: a command running on an active session never stops it.
    code, stderr = run(["--input", "/nonexistent/customers", "--output", publish])
    assert code == 2 and stderr.splitlines()[-1] == "error: input not found: /nonexistent/customers"
    assert spark.range(3).count() == 3


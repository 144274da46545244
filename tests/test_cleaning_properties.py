"""Property tests of the cleaning rules: numbers read from text, and the row counts of the clean stage.

Each example is one small DataFrame evaluated by the session's Spark, checked against
a plain-Python statement of the rule.
"""

import math
from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyspark.sql import functions as F

from segmentation.clean import count_rows, with_drop_reason
from segmentation.config import NumberTextConfig
from segmentation.parse import number_from_text

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
cents = st.integers(min_value=-10**13, max_value=10**13)  # up to a hundred billion, to the cent


def _written(value_cents: int, shape: str) -> str:
    """A number as exports write it: with thousands separators, currency, brackets, spaces."""
    x = value_cents / 100
    sign, magnitude = ("-" if x < 0 else ""), abs(x)
    return {
        "plain": f"{x:.2f}",
        "thousands": f"{sign}{magnitude:,.2f}",
        "currency": f"{sign}${magnitude:,.2f}",
        "spaced": f"  {sign}{magnitude:,.2f}\t",
        "accounting": f"({magnitude:,.2f})" if x < 0 else f"{magnitude:,.2f}",
    }[shape]


def _parsed(spark, texts, **rule):
    df = spark.createDataFrame([(t,) for t in texts], "t STRING")
    return [r["n"] for r in df.select(number_from_text(F.col("t"), NumberTextConfig(**rule)).alias("n")).collect()]


@SETTINGS
@given(st.lists(st.tuples(cents, st.sampled_from(["plain", "thousands", "currency", "spaced", "accounting"])),
                min_size=1, max_size=30))
def test_numbers_written_by_exports_read_back_exactly(spark, values):
    texts = [_written(v, shape) for v, shape in values]
    assert _parsed(spark, texts) == [v / 100 for v, _ in values]


@SETTINGS
@given(st.lists(cents, min_size=1, max_size=30))
def test_european_numbers_read_back_with_their_rule(spark, values):
    # 1.234.567,89 with "." for thousands and "," for decimals
    texts = [f"{v / 100:,.2f}".replace(",", "_").replace(".", ",").replace("_", ".") for v in values]
    assert _parsed(spark, texts, thousands=".", decimal=",") == [v / 100 for v in values]


@SETTINGS
@given(st.lists(st.text(max_size=12), min_size=1, max_size=30))
def test_any_text_reads_as_a_finite_number_or_as_nothing(spark, texts):
    for text, value in zip(texts, _parsed(spark, texts)):
        if value is not None:
            assert math.isfinite(value)
            assert any(c.isdigit() for c in text)
        if text.strip() == "" or not any(c.isdigit() for c in text):
            assert value is None


ids = st.one_of(st.none(), st.integers(min_value=1, max_value=4))
values = st.sampled_from([1.0, 2.0, 0.0, -0.0, None, math.nan])  # 0.0 and -0.0 are one value


@SETTINGS
@given(st.lists(st.tuples(ids, values, values), max_size=25))
def test_row_counts_agree_with_the_rule_written_in_python(spark, rows):
    features = ("a", "b")
    df = spark.createDataFrame(rows, "id INT, a DOUBLE, b DOUBLE")
    counts = count_rows(df.transform(with_drop_reason("id", features)), "id", features)

    dropped, valid = Counter(), []
    for row in rows:
        reason = "null id" if row[0] is None else None
        for name, value in zip(features, row[1:]):
            if reason is None and value is None:
                reason = f"null {name}"
            elif reason is None and math.isnan(value):
                reason = f"NaN {name}"
        if reason:
            dropped[reason] += 1
        else:
            valid.append(row)
    variants = {}
    for row in valid:
        variants.setdefault(row[0], set()).add(row)
    repeated = {i: len(v) for i, v in variants.items() if len(v) > 1}

    assert counts.input_rows == len(rows)
    assert counts.dropped == dict(sorted(dropped.items()))
    assert counts.exact_copies == len(valid) - sum(len(v) for v in variants.values())
    assert counts.duplicate_ids == len(repeated)
    assert counts.duplicate_rows == sum(n - 1 for n in repeated.values())
    if repeated:
        assert counts.duplicate_examples == sorted({str(min(repeated)), str(max(repeated))})


def test_rows_that_differ_only_in_where_a_null_category_sits_are_not_copies(spark):
    # Spark's hash skips nulls: the features' digest must still tell these rows apart.
    rows = [(1, "x", None), (1, None, "x"), (2, "y", None), (2, "y", None), (3, None, None)]
    df = spark.createDataFrame(rows, "id INT, a STRING, b STRING")
    counts = count_rows(df.transform(with_drop_reason("id", ())), "id", ("a", "b"))
    assert (counts.exact_copies, counts.duplicate_ids, counts.duplicate_rows) == (1, 1, 1)
    assert counts.duplicate_examples == ["1"]

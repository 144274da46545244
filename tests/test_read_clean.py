"""Stages 1 and 2: reading the customer table and dropping what cannot be clustered."""

import math

import pytest
from chispa import assert_df_equality
from pyspark.sql import types as T

from segmentation.clean import count_rows, keep_valid, with_drop_reason
from segmentation.config import CsvOptions, InputConfig
from segmentation.errors import InputError
from segmentation.read import read_input, select_features

from conftest import MALL

SCHEMA = "id STRING, `Annual Income (k$)` DOUBLE, `Spending Score (1-100)` INT, note STRING"
FEATURES = ("Annual Income (k$)", "Spending Score (1-100)")


def test_clean_drops_and_counts_each_row_once_by_its_first_reason(spark):
    rows = [
        ("a", 15.0, 39, "ok"),
        (None, 16.0, 81, "no id"),
        ("c", None, None, "both null: counted under income"),
        ("d", math.nan, 6, "NaN"),
        ("e", math.inf, 77, "infinite"),
        ("f", 17.0, None, "null score"),
        ("g", 18.0, 40, "ok"),
    ]
    df = spark.createDataFrame(rows, SCHEMA).transform(
        lambda d: select_features(d, "id", FEATURES)
    )
    reasoned = df.transform(with_drop_reason("id", FEATURES))
    counts = count_rows(reasoned, "id")
    total, dropped = counts.input_rows, counts.dropped
    assert total == 7
    assert dropped == {
        "NaN Annual Income (k$)": 1,
        "infinite Annual Income (k$)": 1,
        "null Annual Income (k$)": 1,
        "null Spending Score (1-100)": 1,
        "null id": 1,
    }
    expected = spark.createDataFrame(
        [("a", 15.0, 39), ("g", 18.0, 40)],
        "id STRING, `Annual Income (k$)` DOUBLE, `Spending Score (1-100)` INT",
    )
    assert_df_equality(keep_valid(reasoned), expected, ignore_row_order=True)


def test_select_features_names_the_missing_column_and_lists_the_others(spark):
    df = spark.createDataFrame([("a", 1.0, 2, "x")], SCHEMA)
    with pytest.raises(InputError, match=r"column 'Age' not found in the input; it has: id, Annual"):
        select_features(df, "id", ("Age",))
    with pytest.raises(InputError, match="column 'customer_id' not found"):
        select_features(df, "customer_id", FEATURES)
    # Text is read as numbers by the clean stage, or one-hot encoded; other types are refused.
    assert select_features(df, "id", ("note",)).columns == ["id", "note"]
    dated = df.selectExpr("id", "DATE'2024-01-31' AS joined")
    with pytest.raises(InputError, match=r"feature 'joined' is not numeric \(type date\)"):
        select_features(dated, "id", ("joined",))


def test_mall_csv_keeps_its_header_names_and_zero_padded_ids(spark):
    cfg = InputConfig(path=str(MALL), format="csv", id_col="CustomerID", features=FEATURES)
    raw = read_input(spark, cfg)
    assert raw.columns == ["CustomerID", "Genre", "Age", "Annual Income (k$)", "Spending Score (1-100)"]
    customers = select_features(raw, "CustomerID", FEATURES)
    assert customers.schema["CustomerID"].dataType == T.StringType()
    assert isinstance(customers.schema["Annual Income (k$)"].dataType, T.IntegerType)
    first = customers.orderBy("CustomerID").first()
    assert (first["CustomerID"], first["Annual Income (k$)"], first["Spending Score (1-100)"]) == ("0001", 15, 39)
    assert customers.count() == 200


def test_csv_with_another_delimiter(spark, tmp_path):
    path = tmp_path / "semicolon.csv"
    path.write_text('cid;"income, k$";score\n1;10,5;3\n2;20;4\n'.replace("10,5", "10.5"))
    cfg = InputConfig(path=str(path), format="csv", id_col="cid", features=("income, k$", "score"),
                      csv=CsvOptions(delimiter=";"))
    df = select_features(read_input(spark, cfg), "cid", ("income, k$", "score"))
    assert sorted(r["income, k$"] for r in df.collect()) == [10.5, 20.0]


def test_missing_empty_and_unreadable_inputs(spark, tmp_path):
    with pytest.raises(InputError, match="input not found: .*nowhere"):
        read_input(spark, InputConfig(path=str(tmp_path / "nowhere")))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="input directory is empty"):
        read_input(spark, InputConfig(path=str(empty)))
    with pytest.raises(InputError, match="no input given"):
        read_input(spark, InputConfig(path=None))
    not_parquet = tmp_path / "text"
    not_parquet.mkdir()
    (not_parquet / "part-0.parquet").write_text("this is not parquet")
    with pytest.raises(Exception):
        read_input(spark, InputConfig(path=str(not_parquet))).collect()


DUPLICATES = [("a", 1.0, 5), ("a", 3.0, 1), ("b", 2.0, 2), ("c", 4.0, 4), ("c", 4.0, 8), ("c", 0.5, 9)]
COLUMNS = "id STRING, `Annual Income (k$)` DOUBLE, `Spending Score (1-100)` INT"


def test_duplicate_ids_are_counted_with_examples(spark):
    from segmentation.clean import count_duplicate_ids

    df = spark.createDataFrame(DUPLICATES, COLUMNS)
    assert count_duplicate_ids(df, "id") == (3, 2, ["a", "c"])
    assert count_duplicate_ids(df.where("id = 'b'"), "id") == (0, 0, [])


def test_one_pass_counts_duplicates_among_valid_rows_only(spark):
    from segmentation.clean import count_rows, with_drop_reason

    rows = DUPLICATES + [("b", None, 3), ("d", None, 1), ("d", 1.0, 1)]
    features = ("Annual Income (k$)", "Spending Score (1-100)")
    counts = count_rows(spark.createDataFrame(rows, COLUMNS).transform(with_drop_reason("id", features)), "id")
    assert (counts.input_rows, counts.dropped) == (9, {"null Annual Income (k$)": 2})
    # b and d each have one valid row: only a and c repeat.
    assert (counts.duplicate_rows, counts.duplicate_ids, counts.duplicate_examples) == (3, 2, ["a", "c"])


def test_keep_first_and_aggregate_leave_one_row_per_id(spark):
    from segmentation.clean import one_row_per_id

    df = spark.createDataFrame(DUPLICATES, COLUMNS)
    first = df.repartition(3).transform(one_row_per_id("id", FEATURES, "keep_first"))
    assert_df_equality(
        first,
        spark.createDataFrame([("a", 1.0, 5), ("b", 2.0, 2), ("c", 0.5, 9)], COLUMNS),
        ignore_row_order=True, ignore_nullable=True,
    )
    mean = df.transform(one_row_per_id("id", FEATURES, "aggregate"))
    assert_df_equality(
        mean,
        spark.createDataFrame(
            [("a", 2.0, 3.0), ("b", 2.0, 2.0), ("c", 8.5 / 3, 7.0)],
            "id STRING, `Annual Income (k$)` DOUBLE, `Spending Score (1-100)` DOUBLE",
        ),
        ignore_row_order=True, ignore_nullable=True,
    )


def test_invalid_values_are_imputed_with_the_median_of_the_valid_ones(spark):
    from segmentation.clean import feature_medians, impute

    rows = [("a", 1.0, 10), ("b", math.nan, 20), ("c", 3.0, None), ("d", math.inf, 40), ("e", 5.0, 30)]
    df = spark.createDataFrame(rows, COLUMNS)
    medians = feature_medians(df, FEATURES)
    assert medians == {"Annual Income (k$)": 3.0, "Spending Score (1-100)": 20}
    expected = spark.createDataFrame(
        [("a", 1.0, 10), ("b", 3.0, 20), ("c", 3.0, 20), ("d", 3.0, 40), ("e", 5.0, 30)], COLUMNS
    )
    assert_df_equality(df.transform(impute(FEATURES, medians)), expected,
                       ignore_row_order=True, ignore_nullable=True)

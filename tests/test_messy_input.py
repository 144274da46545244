"""Messy customer tables: CSV options, numbers as text, duplicate rows, and per-column transforms."""

import json
import os

import pandas as pd
import pytest
from pyspark.ml import PipelineModel

from segmentation.config import CsvOptions, InputConfig
from segmentation.errors import InputError
from segmentation.job import run_segmentation
from segmentation.read import read_input

from conftest import MALL, small_config

MALL_FEATURES = "Genre,Age,Annual Income (k$),Spending Score (1-100)"


def test_whitespace_delimited_export_without_header(spark, tmp_path):
    path = tmp_path / "export.txt"
    path.write_text("  0001   19   15    39\n0002 21\t15  81\n\n\t \n  0003   20   16     6   \n")
    cfg = InputConfig(path=str(path), format="csv", id_col="id",
                      csv=CsvOptions(header=False, delimiter="whitespace", columns=("id", "age", "income", "score")))
    rows = [tuple(r) for r in read_input(spark, cfg).collect()]
    assert rows == [("0001", "19", "15", "39"), ("0002", "21", "15", "81"), ("0003", "20", "16", "6")]


def test_semicolon_csv_with_given_names_and_quotes(spark, tmp_path):
    path = tmp_path / "export.csv"
    path.write_text("a;b;c\n'x;1';2;'3,5'\n'y';4;'1,234.5'\n")
    cfg = InputConfig(path=str(path), format="csv", id_col="customer id",
                      csv=CsvOptions(delimiter=";", quote="'", columns=("customer id", "visits", "spend ($)")))
    df = read_input(spark, cfg)
    assert df.columns == ["customer id", "visits", "spend ($)"]
    assert [tuple(r) for r in df.collect()] == [("x;1", 2, "3,5"), ("y", 4, "1,234.5")]
    with pytest.raises(InputError, match="input.csv.columns names 2 columns but .* has 3"):
        read_input(spark, InputConfig(path=str(path), format="csv", csv=CsvOptions(delimiter=";", columns=("a", "b"))))


def _messy_table(path):
    """Text numbers in several shapes, a blank, one that never parses, exact copies, a repeated id."""
    rows = ["id,income,spend"]
    for i in range(60):
        group = i % 3
        income = [" 20,000 ", "$60,000.00", "100000"][group]
        spend = ["(5.00)", "50", "$ 95.5"][group]
        rows.append(f'{i},"{income}","{spend}"')
    rows += ['60,"",10', '61,"lots",10', '0," 20,000 ","(5.00)"', '0," 20,000 ","(5.00)"', '1,"60000",51']
    path.write_text("\n".join(rows) + "\n")


def test_numbers_as_text_blank_unparseable_and_duplicates(spark, tmp_path):
    path = tmp_path / "messy.csv"
    _messy_table(path)
    output = str(tmp_path / "out")
    config = small_config(**{
        "input.path": str(path), "input.format": "csv", "input.id_col": "id",
        "input.features": "income,spend", "input.duplicate_ids": "keep_first",
        "k.max": 3, "k.fixed": 3, "output.path": output,
    })
    manifest = run_segmentation(spark, config)
    assert manifest["input_rows"] == 65
    assert manifest["dropped_rows"] == {
        "duplicate id": 1, "duplicate row": 2, "null income": 1, "unparseable income": 1,
    }
    assert manifest["labelled_rows"] == 60
    labels = pd.read_parquet(os.path.join(output, "labels")).set_index("id")
    assert labels.loc["0", "income"] == 20000.0 and labels.loc["0", "spend"] == -5.0
    assert labels.loc["2", "spend"] == 95.5
    assert sorted(labels["segment"].value_counts()) == [20, 20, 20]


def test_duplicate_rows_kept_by_policy_are_repeated_ids(spark, tmp_path):
    path = tmp_path / "messy.csv"
    _messy_table(path)
    config = small_config(**{
        "input.path": str(path), "input.format": "csv", "input.id_col": "id", "input.features": "income,spend",
        "input.duplicate_rows": "keep", "output.path": str(tmp_path / "out"),
    })
    with pytest.raises(InputError, match=r"2 ids of 'id' appear on more than one row \(3 rows too many\)"):
        run_segmentation(spark, config)


def test_a_text_column_of_categories_gets_a_hint(spark, tmp_path):
    config = small_config(**{
        "input.path": str(MALL), "input.format": "csv", "input.id_col": "CustomerID",
        "input.features": "Genre", "output.path": str(tmp_path / "out"),
    })
    with pytest.raises(InputError, match=r"'unparseable Genre': 200.*one-hot encode it"):
        run_segmentation(spark, config)


@pytest.fixture(scope="module")
def mall_one_hot(spark, tmp_path_factory):
    output = str(tmp_path_factory.mktemp("mall") / "out")
    config = small_config(**{
        "input.path": str(MALL), "input.format": "csv", "input.id_col": "CustomerID",
        "input.features": MALL_FEATURES, "input.transforms.Genre": ["one_hot"],
        "input.transforms.Annual Income (k$)": ["clip(0.01, 0.99)"],
        "k.max": 8, "k.fixed": 6, "output.path": output,
    })
    return output, run_segmentation(spark, config)


def test_mall_customers_with_genre_one_hot_encoded(mall_one_hot):
    output, manifest = mall_one_hot
    assert manifest["features"] == MALL_FEATURES.split(",")
    assert manifest["categorical_features"] == ["Genre"]
    assert manifest["dimensions"] == [
        "Genre=Female", "Genre=Male", "Genre=(other)", "Age", "Annual Income (k$)", "Spending Score (1-100)",
    ]
    assert manifest["labelled_rows"] == 200
    labels = pd.read_parquet(os.path.join(output, "labels"))
    assert set(labels["Genre"]) == {"Male", "Female"}  # kept as it was, in the column's own name
    assert labels["CustomerID"].str.len().eq(4).all()
    profiles = pd.read_parquet(os.path.join(output, "profiles"))
    shares = profiles[["Genre=Female_share", "Genre=Male_share", "Genre=(other)_share"]]
    assert shares.sum(axis=1).round(12).eq(1.0).all()
    assert profiles["Genre=(other)_share"].eq(0).all()
    # The centroid's share of a category matches the segment's share (k-means centroids are means).
    pairs = profiles[["Genre=Male_centroid", "Genre=Male_share"]].to_numpy()
    assert all(abs(c - s) < 0.05 for c, s in pairs)
    # Clipping at the 1% and 99% quantiles is a fitted step; the labels keep the original value.
    clip = manifest["scaling"]["Annual Income (k$)"]["steps"][0]
    assert clip[0] == "clip" and 15 <= clip[1] < clip[2] < 137
    assert labels["Annual Income (k$)"].max() == 137


def test_the_saved_model_scores_unseen_categories_into_the_extra_slot(spark, mall_one_hot, tmp_path):
    output, _ = mall_one_hot
    model = PipelineModel.load(os.path.join(output, "model"))
    raw = read_input(spark, InputConfig(path=str(MALL), format="csv", id_col="CustomerID"))
    labelled = pd.read_parquet(os.path.join(output, "labels")).set_index("CustomerID")
    scored = model.transform(raw).select("CustomerID", "segment").toPandas().set_index("CustomerID")
    assert (scored["segment"] == labelled.loc[scored.index, "segment"]).all()
    unseen = raw.limit(3).selectExpr("CustomerID", "'Other' AS Genre", "Age", "`Annual Income (k$)`",
                                     "`Spending Score (1-100)`")
    vectors = model.transform(unseen).select("Genre__onehot", "segment").collect()
    assert [v["Genre__onehot"].toArray().tolist() for v in vectors] == [[0.0, 0.0, 1.0]] * 3
    assert all(v["segment"] is not None for v in vectors)


def test_transform_config_errors(tmp_path):
    from segmentation.config import load_config

    with pytest.raises(InputError, match="unknown step 'sqrt'"):
        load_config(None, {"input.transforms.age": ["sqrt"]})
    with pytest.raises(InputError, match="'income' is not one of input.features"):
        load_config(None, {"input.transforms.income": ["log1p"]})
    with pytest.raises(InputError, match="clip quantiles must satisfy"):
        load_config(None, {"input.transforms.age": "clip(0.9, 0.1)"})
    with pytest.raises(InputError, match="one_hot is a step of its own"):
        load_config(None, {"input.transforms.age": "one_hot, log1p"})
    config = load_config(None, {"input.transforms.age": "clip(0.01, 0.99), log1p"})
    assert config.input.transforms == {"age": ("clip(0.01, 0.99)", "log1p")}


def test_csv_date_formats_give_dates_the_rfm_stage_reads(spark, tmp_path):
    from segmentation.config import load_config
    from segmentation.rfm import customer_rfm

    path = tmp_path / "sales.csv"
    path.write_text("id,day,at,amount\n1,31/12/2024,31/12/2024 10:15,5\n1,01/02/2025,01/02/2025 08:00,7\n")
    config = load_config(None, {
        "input.path": str(path), "input.format": "csv", "input.id_col": "id", "input.kind": "transactions",
        "input.csv.date_format": "dd/MM/yyyy", "input.csv.timestamp_format": "dd/MM/yyyy HH:mm",
        "input.transactions.date_col": "at",
    }).input
    table = read_input(spark, config)
    assert [f.dataType.simpleString() for f in table.schema.fields] == ["string", "date", "timestamp", "int"]
    customers, cache, facts = customer_rfm(table, config)
    row = customers.first()
    assert (row["recency_days"], row["tenure_days"], row["frequency"], row["monetary"]) == (1, 33, 2, 12.0)
    assert facts.reference_date == "2025-02-02"
    cache.unpersist()


def test_log1p_outside_its_domain_is_dropped_even_when_imputing(spark, tmp_path):
    path = str(tmp_path / "spend")
    rows = [(i, float(i % 2) * 100 + i, float(i % 2) * 50 + 1) for i in range(40)]
    rows += [(40, -2.0, None), (41, None, 5.0)]  # -2 cannot take log1p; the null is imputed
    spark.createDataFrame(rows, "customer_id LONG, spend DOUBLE, visits DOUBLE").write.parquet(path)
    manifest = run_segmentation(spark, small_config(**{
        "input.path": path, "input.features": "spend,visits", "input.transforms.spend": ["log1p"],
        "input.invalid_values": "impute_median", "k.max": 3, "k.fixed": 2, "output.path": str(tmp_path / "o"),
    }))
    assert manifest["dropped_rows"] == {"spend <= -1 (log1p)": 1}
    assert manifest["imputed"]["rows_by_first_reason"] == {"null spend": 1}
    assert manifest["labelled_rows"] == 41


def test_non_finite_and_overflowing_values_are_dropped_and_counted(spark, tmp_path):
    # inf, -inf and 1e308 in a CSV feature column: dropped by reason, never into the scaler or the model's SQL.
    path = tmp_path / "extreme.csv"
    rows = ["id,income,spend"] + [f"{i},{[20, 60, 100][i % 3] + i % 5},{[5, 50, 95][i % 3]}" for i in range(60)]
    rows += ["60,inf,10", "61,-inf,10", "62,1e308,10", "63,10,-1e300", "64,Infinity,3", "65,NaN,3"]
    path.write_text("\n".join(rows) + "\n")
    output = str(tmp_path / "out")
    config = small_config(**{
        "input.path": str(path), "input.format": "csv", "input.id_col": "id",
        "input.features": "income,spend", "k.max": 3, "k.fixed": 3, "output.path": output,
    })
    manifest = run_segmentation(spark, config)
    assert manifest["labelled_rows"] == 60
    assert sum(manifest["dropped_rows"].values()) == 6
    assert manifest["dropped_rows"]["out of range income"] == 1
    assert manifest["dropped_rows"]["out of range spend"] == 1
    assert all(abs(d["std"]) < 1e3 for d in manifest["scaling"].values())
    scored = PipelineModel.load(os.path.join(output, "model")).transform(
        spark.createDataFrame([(20.0, 5.0)], "income DOUBLE, spend DOUBLE"))
    assert scored.first()["segment"] in (0, 1, 2)


def test_column_names_with_dots_keep_the_users_names_everywhere(spark, tmp_path):
    # Flattened JSON gives names like stats.spend; spark.ml alone cannot address them.
    rows = [{"id": f"c{i}", "stats.spend": [10.0, 50.0, 90.0][i % 3] + i % 7, "stats.visits": [2, 9, 20][i % 3] + i % 2,
             "geo.region": ["north", "south", "east"][i % 3]} for i in range(90)]
    path = tmp_path / "flat.json"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    output = str(tmp_path / "out")
    config = small_config(**{
        "input.path": str(path), "input.format": "json", "input.id_col": "id",
        "input.features": ["stats.spend", "stats.visits", "geo.region"],
        "input.transforms": {"stats.spend": ["clip(0.01, 0.99)"], "geo.region": ["one_hot"]},
        "k.max": 4, "output.path": output,
    })
    manifest = run_segmentation(spark, config)
    assert manifest["chosen_k"] == 3 and manifest["features"] == ["stats.spend", "stats.visits", "geo.region"]
    assert "geo.region=north" in manifest["dimensions"]
    labels = pd.read_parquet(os.path.join(output, "labels"))
    assert {"stats.spend", "stats.visits", "geo.region"} <= set(labels.columns)
    assert sorted(labels.groupby("segment", observed=True)["geo.region"].nunique()) == [1, 1, 1]
    profiles = pd.read_parquet(os.path.join(output, "profiles"))
    assert {"stats.spend_mean", "stats.visits_median", "geo.region=south_share"} <= set(profiles.columns)
    # The saved model scores a table under the user's own names, and so does the score stage's check.
    scored = PipelineModel.load(os.path.join(output, "model")).transform(spark.read.json(str(path)))
    assert scored.select("segment").distinct().count() == 3
    from segmentation.score import model_features

    assert model_features(PipelineModel.load(os.path.join(output, "model")))[0] == (
        "stats.spend", "stats.visits", "geo.region")

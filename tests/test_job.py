"""The whole job in-process on real Parquet and CSV: the output contract, Mall data, bad input."""

import base64
import json
import os
from html.parser import HTMLParser

import pandas as pd
import pyarrow.dataset as ds
import pytest
from chispa import assert_approx_df_equality, assert_df_equality
from pyspark.ml import PipelineModel
from pyspark.sql import functions as F
from sklearn.metrics import adjusted_rand_score

from segmentation.errors import InputError
from segmentation.job import run_segmentation
from segmentation.profile import profile_columns
from segmentation.report import PLOTS

from conftest import MALL, small_config

SYNTHETIC = ("age", "annual_income", "spending", "purchase_frequency")


@pytest.fixture(scope="module")
def run(spark, customers_path, tmp_path_factory):
    output = str(tmp_path_factory.mktemp("job") / "segments")
    config = small_config(**{"input.path": customers_path, "output.path": output})
    manifest = run_segmentation(spark, config)
    return output, manifest


def test_the_output_contract(spark, customers_path, run):
    output, manifest = run
    assert sorted(os.listdir(output)) == [
        "_SUCCESS", "elbow", "labels", "manifest.json", "model", "profiles", "report"
    ]
    assert not [n for n in os.listdir(os.path.dirname(output)) if ".staging-" in n]
    assert manifest["chosen_k"] == 5
    assert manifest["input_rows"] == manifest["labelled_rows"] == 6000
    assert manifest["dropped_rows"] == {}
    on_disk = json.load(open(os.path.join(output, "manifest.json")))
    for key in ("run_id", "started_at", "finished_at", "spark_version", "master", "config",
                "input_rows", "labelled_rows", "dropped_rows", "chosen_k", "k_selection",
                "elbow", "timings", "outputs", "schema_version"):
        assert key in on_disk, key
    selection = on_disk["k_selection"]
    assert (selection["rule"], selection["decided_by"]) == ("auto", "silhouette checked by the elbow")
    assert selection["clear_structure"] is True and selection["summary"].startswith("K = 5: ")
    assert [c["k"] for c in selection["candidates"] if c["elbow_confirms"]][-1] == 5
    assert sorted(selection["signals"]) == [str(k) for k in sorted(range(2, 9), key=str)]
    assert on_disk["schema_version"] == 9
    assert on_disk["elbow_engine"] == "tasks"  # auto, for kmeans on a sample a task can hold
    assert set(on_disk["timings"]) >= {"read", "clean", "features", "sweep", "label", "profile", "publish"}
    # Fitted on all 6000 rows: the labels' distances give back the model's own training cost.
    quality = on_disk["fit_quality"]
    assert quality["fit_rows"] == 6000 and abs(quality["relative_error"]) < 1e-9

    # Labels: Hive partitions, one per segment, every customer exactly once, with the planted grouping.
    partitions = sorted(n for n in os.listdir(os.path.join(output, "labels")) if n.startswith("segment="))
    assert partitions == [f"segment={s}" for s in range(5)]
    labels = spark.read.parquet(os.path.join(output, "labels"))
    assert labels.columns == ["customer_id", "segment_name", "distance", *SYNTHETIC, "segment"]
    assert labels.count() == labels.select("customer_id").distinct().count() == 6000
    truth = spark.read.parquet(customers_path).select("customer_id", "true_segment")
    joined = labels.join(truth, "customer_id").select("segment", "true_segment").toPandas()
    assert adjusted_rand_score(joined["true_segment"], joined["segment"]) > 0.99
    assert labels.select("segment", "segment_name").distinct().count() == 5

    # Profiles and elbow.
    profiles = pd.read_parquet(os.path.join(output, "profiles"))
    assert list(profiles.columns) == profile_columns(SYNTHETIC)
    assert profiles["customers"].sum() == 6000 and list(profiles["segment"]) == [0, 1, 2, 3, 4]
    assert profiles["share"].sum() == pytest.approx(1.0)
    assert set(profiles["segment_name"]) == {
        "High-Value", "Low-Engagement", "Young frequent buyers", "Affluent careful spenders", "Mainstream"
    }
    elbow = pd.read_parquet(os.path.join(output, "elbow"))
    assert list(elbow.columns) == ["k", "wssse", "rows", "silhouette", "sizes", "iterations", "seconds", "chosen",
                                  "log_likelihood", "bic"]
    assert list(elbow["k"]) == list(range(2, 9))
    assert elbow.loc[elbow["chosen"], "k"].tolist() == [5]
    assert (elbow["rows"] == 6000).all()
    assert elbow["silhouette"].idxmax() == elbow.index[elbow["k"] == 5][0]
    assert all(sum(s) == 6000 for s in elbow["sizes"])

    for name in PLOTS:
        assert os.path.getsize(os.path.join(output, "report", name)) > 10_000


class _Page(HTMLParser):
    """Collects what a reader of report.html sees: the title, table cells, images, terms."""

    def __init__(self):
        super().__init__()
        self.title, self.rows, self.images, self.terms, self._tag = "", [], [], [], None

    def handle_starttag(self, tag, attrs):
        self._tag = tag
        if tag == "tr":
            self.rows.append([])
        if tag == "img":
            self.images.append(dict(attrs)["src"])

    def handle_data(self, data):
        if self._tag == "title":
            self.title += data
        elif self._tag in ("td", "th") and data.strip():
            self.rows[-1].append(data.strip())
        elif self._tag == "dt":
            self.terms.append(data)

    def handle_endtag(self, tag):
        self._tag = None


def test_the_html_report_is_one_self_contained_page(run):
    output, manifest = run
    page = _Page()
    with open(os.path.join(output, "report", "report.html"), encoding="utf-8") as handle:
        page.feed(handle.read())
    assert manifest["run_id"] in page.title
    header, *segments = page.rows
    assert header[:4] == ["segment", "name", "customers", "share"]
    profiles = pd.read_parquet(os.path.join(output, "profiles")).sort_values("segment")
    assert [row[1] for row in segments] == profiles["segment_name"].tolist()
    assert [int(row[2].replace(",", "")) for row in segments] == profiles["customers"].tolist()
    assert len(page.images) == len(PLOTS)
    for src in page.images:  # embedded, nothing to fetch
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert {"Run", "Input", "Segments (K)", "Model fitted on"} <= set(page.terms)


def test_saved_model_scores_the_input_exactly_as_the_run_labelled_it(spark, customers_path, run):
    output, _ = run
    model = PipelineModel.load(os.path.join(output, "model"))
    # The run labels by SQL (label.nearest_segment); the saved model by KMeansModel.transform.
    scored = model.transform(spark.read.parquet(customers_path)).select(
        "customer_id", "segment", "segment_name", "distance"
    )
    published = spark.read.parquet(os.path.join(output, "labels")).select(
        "customer_id", "segment", "segment_name", "distance"
    )
    assert_approx_df_equality(scored, published, precision=1e-9, ignore_row_order=True, ignore_nullable=True)


def test_consumers_read_the_labels_with_pandas_and_pyarrow(run):
    output, _ = run
    labels = pd.read_parquet(os.path.join(output, "labels"))
    assert len(labels) == 6000 and sorted(labels["segment"].astype(int).unique()) == [0, 1, 2, 3, 4]
    dataset = ds.dataset(os.path.join(output, "labels"), format="parquet", partitioning="hive")
    fragments = list(dataset.get_fragments(filter=ds.field("segment") == 3))
    assert fragments and all("/segment=3/" in f.path for f in fragments)  # partition pruning
    one = dataset.to_table(filter=ds.field("segment") == 3)
    assert set(one.column("segment").to_pylist()) == {3}
    assert 0 < one.num_rows < 6000


def test_mall_customers_give_the_five_known_segments(spark, tmp_path):
    output = str(tmp_path / "mall")
    config = small_config(**{
        "input.path": str(MALL), "input.format": "csv", "input.id_col": "CustomerID",
        "input.features": "Annual Income (k$),Spending Score (1-100)",
        "k.max": 10, "elbow.seeds_per_k": 3, "output.path": output,
    })
    manifest = run_segmentation(spark, config)
    assert manifest["chosen_k"] == 5
    assert manifest["k_selection"]["decided_by"] == "silhouette checked by the elbow"
    assert manifest["k_selection"]["clear_structure"] is True
    profiles = pd.read_parquet(os.path.join(output, "profiles"))
    assert list(profiles["customers"]) == [81, 39, 35, 23, 22]
    assert list(profiles.columns[5:8]) == ["Annual Income (k$)_mean", "Annual Income (k$)_min", "Annual Income (k$)_max"]
    by_name = profiles.set_index("segment_name")
    assert by_name.loc["Mainstream", "customers"] == 81
    assert by_name.loc["High-Value", "Annual Income (k$)_mean"] > 80
    assert by_name.loc["High-Value", "Spending Score (1-100)_mean"] > 70
    assert by_name.loc["Affluent careful spenders", "Spending Score (1-100)_mean"] < 30
    assert by_name.loc["Budget big spenders", "Annual Income (k$)_mean"] < 40
    assert by_name.loc["Low-Engagement", "Spending Score (1-100)_mean"] < 30
    labels = pd.read_parquet(os.path.join(output, "labels"))
    assert labels["CustomerID"].str.len().eq(4).all() and "Annual Income (k$)" in labels.columns


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"input.features": "age,income"}, "column 'income' not found in the input; it has: customer_id, age"),
        ({"k.max": 7000}, "only 6000 distinct customers .* fewer than k.max = 7000; lower --k-max"),
    ],
)
def test_bad_input_writes_nothing(spark, customers_path, tmp_path, overrides, message):
    output = str(tmp_path / "out")
    config = small_config(**{"input.path": customers_path, "output.path": output, **overrides})
    with pytest.raises(InputError, match=message):
        run_segmentation(spark, config)
    assert os.listdir(tmp_path) == [".out.lock"]  # beside OUTPUT: the lock, nothing else


def test_an_odd_but_valid_choice_of_columns_runs(spark, customers_path, tmp_path):
    """Not every unusual input is an error: a double column as the id (some of its values repeat:
    one exact copy, dropped, and 37 rows of repeated ids, kept once each by policy), an integer
    code as a feature."""
    output = str(tmp_path / "out")
    config = small_config(**{"input.path": customers_path, "output.path": output, "k.max": 4, "report.enabled": False,
                             "input.features": "age,true_segment", "input.id_col": "spending",
                             "input.duplicate_ids": "keep_first"})
    manifest = run_segmentation(spark, config)
    assert manifest["id_col"] == "spending" and manifest["features"] == ["age", "true_segment"]
    assert manifest["dropped_rows"] == {"duplicate id": 37, "duplicate row": 1}
    labels = pd.read_parquet(os.path.join(output, "labels"))
    assert list(labels.columns[:4]) == ["spending", "segment_name", "distance", "age"]
    assert len(labels) == labels["spending"].nunique() == manifest["labelled_rows"] == 6000 - 38


def test_nothing_left_after_cleaning_and_a_text_feature_that_is_not_numbers(spark, tmp_path):
    path = str(tmp_path / "nulls")
    spark.createDataFrame([(1, None, "a"), (2, None, "b")], "customer_id LONG, spending DOUBLE, city STRING") \
        .write.parquet(path)
    with pytest.raises(InputError, match=r"no rows left .* after dropping .*'null spending': 2"):
        run_segmentation(spark, small_config(**{"input.path": path, "input.features": "spending",
                                                "output.path": str(tmp_path / "o")}))
    with pytest.raises(InputError, match=r"'unparseable city': 2\}; if 'city' holds categories, one-hot encode it"):
        run_segmentation(spark, small_config(**{"input.path": path, "input.features": "city",
                                                "output.path": str(tmp_path / "o")}))
    assert not os.path.exists(tmp_path / "o")
    assert not [n for n in os.listdir(tmp_path) if "staging" in n]


def test_refuses_to_replace_a_directory_that_is_not_its_output(spark, customers_path, tmp_path):
    precious = tmp_path / "home"
    precious.mkdir()
    (precious / "thesis.txt").write_text("do not delete")
    with pytest.raises(InputError, match="exists and is not a segmentation output"):
        run_segmentation(spark, small_config(**{"input.path": customers_path, "output.path": str(precious)}))
    assert os.listdir(precious) == ["thesis.txt"]


def test_the_notebook_runs_on_a_published_output(run):
    import nbformat
    from nbclient import NotebookClient

    from conftest import ROOT

    output, manifest = run
    path = ROOT / "notebooks" / "segmentation.ipynb"
    notebook = nbformat.read(path, as_version=4)
    assert all(not c.get("outputs") for c in notebook.cells if c.cell_type == "code"), "strip outputs"
    with open(path, encoding="utf-8") as handle:  # nbformat 4.5 wants an id on every cell
        assert all(cell.get("id") for cell in json.load(handle)["cells"]), "every cell needs an id"
    os.environ["SEGMENTATION_OUTPUT"] = output
    try:
        NotebookClient(notebook, timeout=120, kernel_name="python3",
                       resources={"metadata": {"path": str(path.parent)}}).execute()
    finally:
        del os.environ["SEGMENTATION_OUTPUT"]
    texts = "".join(
        o.get("text", "") + str(o.get("data", {}).get("text/plain", ""))
        for c in notebook.cells if c.cell_type == "code" for o in c.outputs
    )
    assert f"K = {manifest['chosen_k']}: " in texts
    assert "image/png" in {k for c in notebook.cells for o in c.get("outputs", []) for k in o.get("data", {})}


def test_scoring_the_runs_own_input_reproduces_its_labels(spark, customers_path, run, tmp_path):

    from segmentation.config import InputConfig
    from segmentation.score import score_customers

    output, _ = run
    scored_to = str(tmp_path / "scored")
    manifest = score_customers(spark, os.path.join(output, "model"),
                               InputConfig(path=customers_path), scored_to)
    assert (manifest["input_rows"], manifest["labelled_rows"], manifest["dropped_rows"]) == (6000, 6000, 0)
    assert sorted(n for n in os.listdir(scored_to)) == ["_SUCCESS", "labels", "manifest.json", "report"]
    scored = spark.read.parquet(os.path.join(scored_to, "labels"))
    published = spark.read.parquet(os.path.join(output, "labels"))
    assert scored.columns == published.columns
    assert_df_equality(scored, published, ignore_row_order=True, ignore_nullable=True)


def test_scoring_checks_the_input_against_the_models_features(spark, customers_path, run, tmp_path):

    from segmentation.config import InputConfig
    from segmentation.score import score_customers

    output, _ = run
    wrong = str(tmp_path / "wrong")
    spark.read.parquet(customers_path).withColumn("spending", F.lit("lots")) \
        .write.parquet(wrong)
    with pytest.raises(InputError, match=r"could be scored: all 6000 have missing or unparseable values"):
        score_customers(spark, os.path.join(output, "model"), InputConfig(path=wrong), str(tmp_path / "o"))
    missing = str(tmp_path / "missing")
    spark.read.parquet(customers_path).drop("age").write.parquet(missing)
    with pytest.raises(InputError, match="column 'age' not found in the input"):
        score_customers(spark, os.path.join(output, "model"), InputConfig(path=missing), str(tmp_path / "o"))
    with pytest.raises(InputError, match="no saved model at"):
        score_customers(spark, str(tmp_path / "nomodel"), InputConfig(path=missing), str(tmp_path / "o"))
    assert not os.path.exists(tmp_path / "o")


def test_same_input_in_one_file_or_eight_gives_the_same_labels_and_profiles(spark, customers_path, tmp_path):
    from chispa import assert_approx_df_equality

    source = spark.read.parquet(customers_path)
    results = {}
    for files in (1, 8):
        path = str(tmp_path / f"in{files}")
        source.repartition(files).write.parquet(path)
        output = str(tmp_path / f"out{files}")
        run_segmentation(spark, small_config(**{"input.path": path, "output.path": output, "k.max": 6}))
        results[files] = (
            spark.read.parquet(os.path.join(output, "labels")),
            spark.read.parquet(os.path.join(output, "profiles")),
        )
    assert_approx_df_equality(results[1][0], results[8][0], precision=1e-9, ignore_row_order=True)
    assert_approx_df_equality(results[1][1], results[8][1], precision=1e-9, ignore_row_order=True)


def test_the_spark_ml_engine_finds_the_same_segments_as_the_tasks_engine(spark, customers_path, tmp_path, run):
    _, tasks = run
    output = str(tmp_path / "spark_ml")
    config = small_config(**{"input.path": customers_path, "output.path": output, "elbow.engine": "spark_ml"})
    manifest = run_segmentation(spark, config)
    assert manifest["elbow_engine"] == "spark_ml" and manifest["chosen_k"] == tasks["chosen_k"] == 5
    assert [s["fitted_rows"] for s in manifest["segments"]] == [s["fitted_rows"] for s in tasks["segments"]]
    chosen = [next(p["wssse"] for p in m["elbow"] if p["chosen"]) for m in (manifest, tasks)]
    assert chosen[0] == pytest.approx(chosen[1], rel=1e-6)
    # The tasks engine keeps the best of 10 k-means++ runs: never worse than one spark.ml fit.
    for ours, theirs in zip(tasks["elbow"], manifest["elbow"]):
        assert ours["wssse"] <= theirs["wssse"] * 1.001


def test_a_model_fitted_on_a_sample_labels_every_row(spark, customers_path, tmp_path):
    output = str(tmp_path / "sampled")
    config = small_config(**{"input.path": customers_path, "output.path": output,
                             "elbow.sample_rows": 1500, "k.max": 7})
    manifest = run_segmentation(spark, config)
    assert 1200 < manifest["fit_rows"] < 1800  # drawn by a hash of the id: about 1500
    assert {p["rows"] for p in manifest["elbow"]} == {manifest["fit_rows"]}
    assert manifest["labelled_rows"] == 6000 and manifest["chosen_k"] == 5
    # The sample's WSSSE per row stands for all rows' (the chosen K's model on both).
    assert abs(manifest["fit_quality"]["relative_error"]) < 0.05
    full = spark.read.parquet(customers_path)
    for name, fitted in manifest["scaling"].items():  # the scaler learned from the sample
        mean, std = full.agg(F.mean(name), F.stddev(name)).first()
        assert fitted["mean"] == pytest.approx(mean, rel=0.05)
        assert fitted["std"] == pytest.approx(std, rel=0.05)


def test_duplicate_ids_fail_by_default_and_merge_by_policy(spark, tmp_path):
    path = str(tmp_path / "dups")
    rows = [(i % 50, float(i % 7), float(i % 11)) for i in range(60)]  # ids 0..9 appear twice
    spark.createDataFrame(rows, "customer_id LONG, a DOUBLE, b DOUBLE").write.parquet(path)
    base = {"input.path": path, "input.features": "a,b", "k.max": 7, "output.path": str(tmp_path / "o")}
    with pytest.raises(InputError, match=r"10 ids of 'customer_id' appear on more than one row "
                                         r"\(10 rows too many\), e.g. '0', '9'; set input.duplicate_ids"):
        run_segmentation(spark, small_config(**base))
    assert not os.path.exists(tmp_path / "o")
    manifest = run_segmentation(spark, small_config(**base, **{"input.duplicate_ids": "aggregate"}))
    assert manifest["dropped_rows"] == {"duplicate id": 10}
    assert (manifest["input_rows"], manifest["labelled_rows"]) == (60, 50)


def test_a_corrupt_parquet_file_among_good_ones_is_named(spark, customers_path, tmp_path):
    import shutil

    corrupt = tmp_path / "corrupt"
    shutil.copytree(customers_path, corrupt)
    victim = sorted(p for p in os.listdir(corrupt) if p.endswith(".parquet"))[1]
    (corrupt / victim).write_bytes(b"not parquet at all")
    with pytest.raises(InputError, match=rf"cannot read input file \S*{victim}: it is corrupt or not parquet"):
        run_segmentation(spark, small_config(**{"input.path": str(corrupt), "output.path": str(tmp_path / "o")}))
    assert not os.path.exists(tmp_path / "o")

def test_a_csv_file_read_as_parquet_says_which_format_to_pass(spark, tmp_path):
    path = tmp_path / "customers.csv"
    path.write_text("customer_id,a,b\n1,2,3\n2,3,4\n")
    with pytest.raises(InputError, match=r"it is corrupt or not parquet \(its name ends in \.csv: "
                                         r"pass --input-format csv\)$"):
        run_segmentation(spark, small_config(**{"input.path": str(path), "output.path": str(tmp_path / "o")}))
    assert not os.path.exists(tmp_path / "o")



def test_invalid_values_policy_drop_fail_or_impute(spark, tmp_path):
    import math

    path = str(tmp_path / "gaps")
    rows = [(i, float(i % 9), float(i % 13)) for i in range(1, 80)]
    rows += [(100, math.nan, 1.0), (101, 2.0, None), (102, math.inf, 3.0), (None, 1.0, 1.0)]
    spark.createDataFrame(rows, "customer_id LONG, a DOUBLE, b DOUBLE").write.parquet(path)
    base = {"input.path": path, "input.features": "a,b", "k.max": 7}

    dropped = run_segmentation(spark, small_config(**base, **{"output.path": str(tmp_path / "d")}))
    assert dropped["dropped_rows"] == {"NaN a": 1, "infinite a": 1, "null b": 1, "null customer_id": 1}
    assert dropped["labelled_rows"] == 79

    with pytest.raises(InputError, match=r"3 rows of .* have invalid feature values \(NaN a: 1, infinite a: 1, "
                                         r"null b: 1\); set input.invalid_values"):
        run_segmentation(spark, small_config(**base, **{"input.invalid_values": "fail",
                                                        "output.path": str(tmp_path / "f")}))
    assert not os.path.exists(tmp_path / "f")

    imputed = run_segmentation(spark, small_config(**base, **{"input.invalid_values": "impute_median",
                                                              "output.path": str(tmp_path / "i")}))
    assert imputed["dropped_rows"] == {"null customer_id": 1}
    assert imputed["labelled_rows"] == 82
    assert imputed["imputed"]["rows_by_first_reason"] == {"NaN a": 1, "infinite a": 1, "null b": 1}
    labels = pd.read_parquet(os.path.join(tmp_path / "i", "labels")).set_index("customer_id")
    assert labels.loc[100, "a"] == imputed["imputed"]["medians"]["a"]
    assert labels.loc[101, "b"] == imputed["imputed"]["medians"]["b"]


def test_label_sample_reads_at_most_n_rows_of_each_segment(spark, tmp_path):
    """The scatter plot's rows: the first N of each segment, from that segment's files only."""
    from pyspark.sql import functions as F

    from segmentation.report import label_sample

    path = str(tmp_path / "labels")
    spark.range(3000).select(F.col("id").alias("customer_id"), (F.col("id") % 3).cast("int").alias("segment")).where(
        (F.col("segment") < 2) | (F.col("customer_id") < 150)  # segment 2 has only 50 rows
    ).repartition(4).write.partitionBy("segment").parquet(path)
    sample = label_sample(path, [0, 1, 2], 100)
    assert sample.groupby("segment").size().to_dict() == {0: 100, 1: 100, 2: 50}
    assert (sample["customer_id"] % 3 == sample["segment"].astype("int64")).all()
    assert sample["customer_id"].is_unique

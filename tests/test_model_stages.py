"""Stages 3 to 8 on tiny inline data: features, sweep, segment model, labels, profiles."""

import math
import os

import numpy as np
import pytest
from chispa import assert_approx_df_equality
from pyspark.ml import PipelineModel

from segmentation.config import ElbowConfig
from segmentation.elbow import sweep
from segmentation.errors import InputError
from segmentation.features import RAW_VECTOR, SCALED_VECTOR, fit_features
from segmentation.sample import draw_fit_rows, scale_fit_rows
from segmentation.label import label_customers, segment_model, segments_by_size
from segmentation.naming import name_segments
from segmentation.profile import profile_columns, profile_segments

FEATURES = ("income", "spending")
# Three tight groups: 4 rich big spenders, 3 middle, 2 poor careful.
ROWS = [
    (1, 100.0, 90.0), (2, 102.0, 92.0), (3, 98.0, 88.0), (4, 100.0, 91.0),
    (5, 50.0, 50.0), (6, 52.0, 49.0), (7, 48.0, 51.0),
    (8, 10.0, 10.0), (9, 12.0, 12.0),
]


@pytest.fixture(scope="module")
def tiny(spark):
    return spark.createDataFrame(ROWS, "customer_id LONG, income DOUBLE, spending DOUBLE")


@pytest.fixture(scope="module")
def fitted(spark, tiny):
    feature_model, scaling = fit_features(tiny, FEATURES)
    sample, rows = draw_fit_rows(tiny, 9, "customer_id", FEATURES, None, seed=1, partitions=2)
    data = scale_fit_rows(feature_model, sample, FEATURES)
    points = sweep(spark, data, [2, 3, 4], ElbowConfig(seeds_per_k=2, parallelism=3), 1, rows)
    return feature_model, scaling, points


def test_scaling_matches_numpy_with_sample_standard_deviation(tiny):
    _, scaling = fit_features(tiny, FEATURES)
    values = np.array([[r[1], r[2]] for r in ROWS])
    assert np.allclose(scaling.mean, values.mean(axis=0))
    assert np.allclose(scaling.std, values.std(axis=0, ddof=1))


def test_zero_variance_feature_is_an_input_error(spark):
    df = spark.createDataFrame([(1, 5.0, 1.0), (2, 5.0, 2.0)], "customer_id LONG, income DOUBLE, spending DOUBLE")
    with pytest.raises(InputError, match="feature 'income' has zero variance"):
        fit_features(df, FEATURES)


def test_sweep_records_every_k_from_its_fits(fitted):
    _, _, points = fitted
    assert [p.k for p in points] == [2, 3, 4]
    for point in points:
        assert point.rows == 9 and sum(point.sizes) == 9 and len(point.sizes) == point.k
        assert point.wssse == pytest.approx(point.model.summary.trainingCost)
        assert point.iterations >= 1 and point.seconds > 0
    assert points[0].wssse > points[1].wssse > points[2].wssse
    assert points[1].silhouette > 0.8  # three tight groups


def test_segments_are_numbered_by_size_and_named(fitted):
    _, scaling, points = fitted
    segments = segments_by_size(points[1].centers, points[1].sizes, scaling, lambda z: name_segments(FEATURES, z))
    assert [s.fitted_rows for s in segments] == [4, 3, 2]
    assert [s.name for s in segments] == ["High-Value", "Mainstream", "Low-Engagement"]
    assert segments[0].centroid == pytest.approx((100.0, 90.25))


def test_labels_and_saved_model_give_segment_name_and_distance(spark, tiny, fitted, tmp_path):
    feature_model, scaling, points = fitted
    segments = segments_by_size(points[1].centers, points[1].sizes, scaling, lambda z: name_segments(FEATURES, z))
    model = segment_model(feature_model, points[1].model, segments, scaling)
    labels = tiny.transform(label_customers(model, "customer_id", FEATURES))
    assert labels.columns == ["customer_id", "segment", "segment_name", "distance", "income", "spending"]

    def expected_row(cid, income, spending):
        segment = 0 if cid <= 4 else (1 if cid <= 7 else 2)
        z = np.array(scaling.to_z([income, spending]))
        distance = float(np.linalg.norm(z - np.array(segments[segment].centroid_z)))
        return (cid, segment, segments[segment].name, distance, income, spending)

    expected = spark.createDataFrame([expected_row(*r) for r in ROWS], labels.schema)
    assert_approx_df_equality(labels, expected, precision=1e-9, ignore_row_order=True)

    model.write().save(str(tmp_path / "model"))
    reloaded = PipelineModel.load(str(tmp_path / "model")).transform(tiny)
    assert_approx_df_equality(
        reloaded.select(*labels.columns), labels, precision=1e-12, ignore_row_order=True
    )


@pytest.mark.parametrize("transforms", [{}, {"b": ("log1p",), "c": ("clip(0.05, 0.95)",), "kind": ("one_hot",)}])
def test_labels_by_sql_are_the_saved_models_labels(spark, transforms):
    """The labelling pass's arg-min in SQL against KMeansModel.transform, row for row, on 20,000
    rows in K = 9 overlapping clusters (many rows near a boundary), with and without transforms."""
    from segmentation.elbow import kmeans_model
    from segmentation.parse import parse_steps

    rng = np.random.default_rng(5)
    n = 20_000
    centres = rng.normal(0, 2, size=(9, 3))
    values = centres[rng.integers(9, size=n)] + rng.normal(0, 1.5, size=(n, 3))
    kinds = rng.choice(["north", "south", "east"], size=n)
    rows = [(i, float(a), float(abs(b)), float(c), str(k)) for i, ((a, b, c), k) in enumerate(zip(values, kinds))]
    table = spark.createDataFrame(rows, "customer_id LONG, a DOUBLE, b DOUBLE, c DOUBLE, kind STRING").cache()
    features = ("a", "b", "c", "kind") if transforms else ("a", "b", "c")
    steps = {f: parse_steps(f, s) for f, s in transforms.items()}
    feature_model, scaling = fit_features(table, features, steps=steps)
    data = scale_fit_rows(feature_model, table, scaling.input_features)
    point = sweep(spark, data, [9], ElbowConfig(task_seeds_per_k=2), 3, n, engine="tasks")[0]
    point = kmeans_model(spark, point)
    segments = segments_by_size(point.centers, point.sizes, scaling, lambda z: [f"s{i}" for i in range(len(z))])
    model = segment_model(feature_model, point.model, segments, scaling)
    by_sql = table.transform(label_customers(model, "customer_id", features, segments, scaling))
    by_model = table.transform(label_customers(model, "customer_id", features))
    plan = by_sql._jdf.queryExecution().executedPlan().toString()
    assert SCALED_VECTOR not in plan and RAW_VECTOR not in plan  # no vector (one-hot's index is a UDF)
    assert by_sql.columns == by_model.columns
    assert_approx_df_equality(by_sql, by_model, precision=1e-9, ignore_row_order=True)
    sizes = [r["count"] for r in by_sql.groupBy("segment").count().orderBy("segment").collect()]
    assert sizes == [s.fitted_rows for s in segments]  # the fit's own rows: the same clusters
    table.unpersist()


def test_profiles_aggregate_each_segment(spark, tiny, fitted):
    feature_model, scaling, points = fitted
    segments = segments_by_size(points[1].centers, points[1].sizes, scaling, lambda z: name_segments(FEATURES, z))
    model = segment_model(feature_model, points[1].model, segments, scaling)
    labels = tiny.transform(label_customers(model, "customer_id", FEATURES))
    profiles = profile_segments(spark, labels, scaling, segments, total=9)
    assert [list(r) for r in profiles] == [profile_columns(scaling)] * 3
    rows = {r["segment"]: r for r in profiles}
    assert [rows[s]["customers"] for s in range(3)] == [4, 3, 2]
    assert rows[0]["share"] == pytest.approx(4 / 9)
    assert rows[0]["income_mean"] == pytest.approx(100.0)
    assert (rows[0]["income_min"], rows[0]["income_max"], rows[0]["income_median"]) == (98.0, 102.0, 100.0)
    assert rows[2]["spending_median"] in (10.0, 12.0)
    assert rows[1]["income_centroid"] == pytest.approx(50.0)
    assert rows[1]["income_centroid_z"] == pytest.approx(scaling.to_z([50.0, 50.0])[0])
    assert rows[2]["segment_name"] == "Low-Engagement"
    assert not any(math.isnan(v) for v in rows[0].values() if isinstance(v, float))



@pytest.mark.parametrize("predicted", [False, True])
def test_a_segment_no_customer_fell_into_keeps_its_row_and_the_written_schema(spark, tiny, fitted, tmp_path,
                                                                             predicted):
    """The profile's rows written as a small table: every segment of the model, also one with no
    customers (zero customers, share, WSSSE and expected totals, no statistics, its centroid),
    with ``profile_schema``'s types and nullability."""
    import pyarrow.parquet as pq
    from pyspark.sql import functions as F

    from segmentation.profile import profile_schema
    from segmentation.publish import write_small_table

    feature_model, scaling, points = fitted
    segments = segments_by_size(points[1].centers, points[1].sizes, scaling, lambda z: name_segments(FEATURES, z))
    model = segment_model(feature_model, points[1].model, segments, scaling)
    labels = tiny.transform(label_customers(model, "customer_id", FEATURES)).where(F.col("segment") != 2)
    if predicted:
        labels = labels.withColumns({"p_purchase": F.lit(0.25), "expected_spend": F.lit(10.0)})
    rows = profile_segments(spark, labels, scaling, segments, total=7)
    write_small_table(spark, rows, profile_schema(scaling, predicted), str(tmp_path / "profiles"))
    written = spark.read.parquet(str(tmp_path / "profiles"))  # Spark reads every column as nullable
    stored = pq.read_schema(next((tmp_path / "profiles").glob("*.parquet")))
    schema = profile_schema(scaling, predicted)
    assert [(f.name, f.nullable) for f in stored] == [(f.name, f.nullable) for f in schema.fields]
    assert [f.dataType for f in written.schema.fields] == [f.dataType for f in schema.fields]
    assert written.columns == profile_columns(scaling, predicted)
    got = [r.asDict() for r in written.collect()]
    assert got == rows and [r["segment"] for r in got] == [0, 1, 2]
    empty = got[2]
    assert (empty["customers"], empty["share"], empty["wssse"]) == (0, 0.0, 0.0)
    assert all(empty[f"{f}_{stat}"] is None for f in FEATURES for stat in ("mean", "min", "max", "median"))
    assert empty["income_centroid"] == pytest.approx(segments[2].centroid[0])
    assert got[0]["share"] == pytest.approx(4 / 7)
    if predicted:
        assert (empty["expected_active_customers"], empty["expected_revenue"]) == (0.0, 0.0)
        assert got[0]["expected_active_customers"] == pytest.approx(1.0)
        assert got[0]["expected_revenue"] == pytest.approx(40.0)


def _curve(values):
    from segmentation.elbow import ElbowPoint

    return [ElbowPoint(k=k, wssse=w, rows=1, silhouette=None, sizes=[], iterations=1, seconds=0.0,
                       seed=0, model=None, centers=[]) for k, w in zip(range(2, 2 + len(values)), values)]


def test_bumps_flag_the_k_stuck_in_a_poor_local_minimum():
    from segmentation.elbow import bumps

    # The K=5 fit of a real run that merged two planted segments: 5033 where ~1850 was reachable.
    assert bumps(_curve([14685.9, 8979.8, 5767.2, 5033.3, 1555.6, 1491.2, 1287.5])) == [5]
    assert bumps(_curve([100.0, 60.0, 40.0, 45.0, 30.0])) == [5]  # not even falling
    # Small wiggles of a healthy curve are left alone.
    assert bumps(_curve([492114, 267860, 157776, 62006, 52395, 49421, 45243, 40328, 39682])) == []


def test_zero_variance_feature_is_dropped_with_a_warning_by_policy(spark, caplog):
    df = spark.createDataFrame([(1, 5.0, 1.0), (2, 5.0, 2.0), (3, 5.0, 4.0)],
                               "customer_id LONG, income DOUBLE, spending DOUBLE")
    model, scaling = fit_features(df, FEATURES, zero_variance="drop")
    assert scaling.features == ("spending",)
    assert model.stages[0].getInputCols() == ["spending"]
    assert "dropping features with zero variance: income" in caplog.text
    constant = spark.createDataFrame([(1, 5.0, 1.0), (2, 5.0, 1.0)], "customer_id LONG, income DOUBLE, spending DOUBLE")
    with pytest.raises(InputError, match="every feature has zero variance"):
        fit_features(constant, FEATURES, zero_variance="drop")


def test_profile_medians_hold_their_rank_beyond_the_sketch_size(spark, fitted):
    """300,000 rows, 100,000 per segment: more than the KLL sketch keeps, so the median is estimated.

    Its rank within the segment must be 1/2 to within 2/10,000 (the sketch's bound is 1/10,000
    with 99% confidence); a skewed feature makes a mean-for-median mistake show.
    """
    from pyspark.sql import functions as F

    _, scaling, points = fitted
    segments = segments_by_size(points[1].centers, points[1].sizes, scaling, lambda z: name_segments(FEATURES, z))
    labels = spark.range(300_000).select(
        F.col("id").alias("customer_id"),
        (F.col("id") % 3).cast("int").alias("segment"),
        F.lit("x").alias("segment_name"),
        F.lit(0.0).alias("distance"),
        F.exp(F.randn(7) * 2).alias("income"),
        (F.rand(8) * 100).alias("spending"),
    ).cache()
    profiles = {r["segment"]: r for r in profile_segments(spark, labels, scaling, segments, 300_000)}
    for segment in range(3):
        rows = labels.where(F.col("segment") == segment)
        for feature in FEATURES:
            median = profiles[segment][f"{feature}_median"]
            below, at_most = rows.select(
                F.count(F.when(F.col(feature) < median, 1)), F.count(F.when(F.col(feature) <= median, 1))
            ).first()
            assert below / 100_000 - 2e-4 <= 0.5 <= at_most / 100_000 + 2e-4, (segment, feature, median)
    labels.unpersist()


def test_a_local_table_holds_exactly_its_rows_and_schema(spark):
    """The profile's centroid table, made from one SQL expression: every double round-trips
    exactly, names and strings keep their punctuation, and the schema (nullability too) is as asked."""
    from chispa import assert_df_equality
    from pyspark.sql import types as T

    from segmentation.sql import local_table

    schema = T.StructType([
        T.StructField("segment", T.IntegerType(), False),
        T.StructField("segment_name", T.StringType(), False),
        T.StructField("Annual Income (k$).x`_centroid", T.DoubleType(), False),
        T.StructField("n", T.LongType(), True),
    ])
    rng = np.random.default_rng(3)
    doubles = [0.30000000000000004, -0.0, 5e-324, 1e-300, -1.2345678901234567e100, 123456789.125,
               *[float(x) for x in rng.standard_normal(20) * 10.0 ** rng.integers(-12, 12, 20)]]
    texts = ["it's", "back\\slash", "new\nline", "ünï ✓", '"quoted"', "a,b"]
    rows = [(i, texts[i % len(texts)], x, None if i % 3 else 2**40 + i) for i, x in enumerate(doubles)]
    table = local_table(spark, rows, schema)
    assert table.schema == schema
    assert_df_equality(table, spark.createDataFrame(rows, schema))
    got = [tuple(r) for r in table.collect()]
    assert [math.copysign(1.0, r[2]) for r in got] == [math.copysign(1.0, r[2]) for r in rows]
    assert got == rows
    as_numpy = [(np.int32(i), t, np.float64(x), n if n is None else np.int64(n)) for i, t, x, n in rows]
    assert [tuple(r) for r in local_table(spark, as_numpy, schema).collect()] == rows  # numpy's scalars too


@pytest.mark.parametrize("table", ["elbow", "migrations", "predictions_eval"])
def test_the_small_tables_are_written_with_their_schema_whatever_their_values(spark, tmp_path, table):
    """write_small_table (a local_table, no Python job) writes the same Parquet as createDataFrame
    would: a nullable column stays nullable when no row holds NULL, arrays and dates included."""
    import datetime

    import pyarrow.parquet as pq

    from segmentation.job import ELBOW_SCHEMA
    from segmentation.migrations import MIGRATIONS_SCHEMA
    from segmentation.predict import EVAL_SCHEMA
    from segmentation.publish import write_small_table

    schema, rows = {
        "elbow": (ELBOW_SCHEMA, [
            {"k": 2, "wssse": 10.5, "rows": 100, "silhouette": 0.5, "sizes": [60, 40], "iterations": 3,
             "seconds": 0.1, "chosen": False, "log_likelihood": None, "bic": None},
            {"k": 3, "wssse": 4.25, "rows": 100, "silhouette": 0.625, "sizes": [], "iterations": 7,
             "seconds": 0.2, "chosen": True, "log_likelihood": -3.5, "bic": 1e-300},
        ]),
        "migrations": (MIGRATIONS_SCHEMA, [(0, "Savers", 1, "it's new", 5, 0.5), (2, "a\\b", 1, "x", 5, 0.5)]),
        "predictions_eval": (EVAL_SCHEMA, [
            ("bgnbd", True, datetime.date(1998, 1, 1), 90, 100, 90, 0.7, 0.3, 1.0, 2.0, -0.5, 3.0, 4.0, 0.25,
             [0.1, 0.2], [0.3, 0.4], [0.0, 1.0]),
        ]),
    }[table]
    expected = spark.createDataFrame(rows, schema)
    write_small_table(spark, rows, schema, str(tmp_path / "ours"))
    expected.coalesce(1).write.parquet(str(tmp_path / "theirs"))
    ours, theirs = ([f for f in os.listdir(tmp_path / name) if f.endswith(".parquet")] for name in ("ours", "theirs"))
    assert len(ours) == 1
    read = {name: pq.read_table(tmp_path / name / files[0])
            for name, files in (("ours", ours), ("theirs", theirs))}
    assert read["ours"].schema.remove_metadata() == read["theirs"].schema.remove_metadata()
    assert read["ours"].to_pylist() == read["theirs"].to_pylist()
    written = spark.read.parquet(str(tmp_path / "ours"))
    assert written.schema == spark.read.parquet(str(tmp_path / "theirs")).schema


@pytest.mark.parametrize("k_max", [3, 10, 40, 251])
def test_fewer_distinct_customers_than_k_max_is_an_input_error(spark, k_max):
    """The fit rows' pass estimates their distinct points; just enough, one too few (repeated
    many times over) and plenty are each decided as an exact count would decide them."""
    for distinct, ok in ((k_max - 1, False), (k_max, True), (3 * k_max, True)):
        rows = [(i, float(i % distinct), float((i % distinct) % 3)) for i in range(50 * k_max)]
        table = spark.createDataFrame(rows, "customer_id LONG, income DOUBLE, spending DOUBLE")
        feature_model, _ = fit_features(table, FEATURES)
        sample, _ = draw_fit_rows(table, len(rows), "customer_id", FEATURES, None, seed=1, partitions=2)
        if ok:
            scale_fit_rows(feature_model, sample, FEATURES, k_max).unpersist()
        else:
            with pytest.raises(InputError, match=f"only {distinct} distinct customers .* fewer than "
                                                 f"k.max = {k_max}; lower --k-max to at most {distinct}$"):
                scale_fit_rows(feature_model, sample, FEATURES, k_max)

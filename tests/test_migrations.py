"""Migrations and drift since the previous run: the table against a pandas join of the two runs'
labels and against the generator's truth, the drift rules, and --fail-on-drift."""

from __future__ import annotations

import json
import logging
import os

import pandas as pd
import pytest
from chispa import assert_df_equality

from conftest import run_segment, small_config
from segmentation.config import DriftConfig
from segmentation.drift import enforce_drift, measure_drift
from segmentation.errors import DriftError
from segmentation.features import Scaling
from segmentation.job import run_segmentation
from segmentation.lineage import PreviousRun, PreviousSegment
from segmentation.migrations import MIGRATIONS_SCHEMA, migration_rows, summarise
from segmentation.synthetic import Period, generate_customers
from test_cli import digest

ROWS, SEED = 6000, 11


def test_shares_add_up_per_origin_and_stability_counts_only_returning_customers():
    counts = [(0, 0, 80), (0, 1, 20), (1, 1, 45), (1, None, 5), (None, 0, 10), (None, 1, 30), (1, 0, 50)]
    rows = migration_rows(counts, {0: "A", 1: "B"}, {0: "A", 1: "B"})
    assert [(r[0], r[2]) for r in rows] == [(0, 0), (0, 1), (1, 0), (1, 1), (1, None), (None, 0), (None, 1)]
    assert rows[4] == (1, "B", None, None, 5, 0.05) and rows[5] == (None, None, 0, "A", 10, 0.25)
    for origin in (0, 1, None):
        assert sum(r[5] for r in rows if r[0] == origin) == pytest.approx(1.0)
    facts = summarise(counts)
    assert facts == {"previous_customers": 200, "customers": 235, "returning_customers": 195,
                     "kept_segment": 125, "new_customers": 40, "gone_customers": 5, "stability": 125 / 195}
    assert summarise([(None, 0, 3)])["stability"] is None  # nobody came back


def drift_of(profiles, pairs, retired=(), config=DriftConfig()):
    previous = PreviousRun("p", "run-1", "run-1", ("x",), (0.0,), (1.0,), (
        PreviousSegment(0, "Big", (0.0,), 600, 0.6, {"x": 10.0}),
        PreviousSegment(1, "Small", (2.0,), 300, 0.3, {"x": 30.0}),
        PreviousSegment(2, "Tiny", (4.0,), 100, 0.1, {"x": 50.0}),
    ), 2, "id")
    lineage = {"pairs": [{"segment": n, "distance_z": d} for n, d in pairs],
               "retired": [{"segment": n} for n in retired]}
    return measure_drift(profiles, Scaling(("x",), (0.0,), (1.0,)), previous, lineage, config)


def profile(segment, name, customers, share, mean):
    return {"segment": segment, "segment_name": name, "customers": customers, "share": share, "x_mean": mean}


def test_drift_measures_every_segment_and_names_each_limit_crossed():
    steady = drift_of([profile(0, "Big", 610, 0.61, 10.5), profile(1, "Small", 290, 0.29, 29.0),
                       profile(2, "Tiny", 100, 0.10, 50.0)], [(0, 0.05), (1, 0.1), (2, 0.0)])
    assert not steady["drifted"] and steady["reasons"] == []
    big = steady["segments"][0]
    assert big["status"] == "kept" and big["share_change"] == pytest.approx(0.01)
    assert big["mean_shift"] == {"x": pytest.approx(0.5)} and big["previous_customers"] == 600

    moved = drift_of([profile(0, "Big", 500, 0.5, 12.0), profile(1, "Small", 400, 0.4, 29.0),
                      profile(3, "Newcomers", 100, 0.1, 80.0)], [(0, 0.4), (1, 0.1)], retired=[2])
    assert moved["drifted"]
    assert moved["reasons"] == [
        "segment 0 'Big' moved 0.40 z (limit 0.25)", "segment 0 'Big' share 60.0% -> 50.0% (limit ±5.0%)",
        "segment 1 'Small' share 30.0% -> 40.0% (limit ±5.0%)", "segment 3 'Newcomers' is new", "segment 2 'Tiny' retired"]
    assert [(s["segment"], s["status"]) for s in moved["segments"]] == [(0, "kept"), (1, "kept"), (2, "retired"), (3, "new")]
    assert moved["segments"][2]["share_change"] == -0.1 and moved["segments"][3]["previous_share"] is None

    lenient = drift_of([profile(0, "Big", 500, 0.5, 12.0), profile(1, "Small", 500, 0.5, 29.0)], [(0, 0.4), (1, 0.1)],
                       retired=[2], config=DriftConfig(centroid_shift_z=0.5, share_change=0.25, new_or_retired=False))
    assert not lenient["drifted"]


def test_a_drifted_run_warns_once_or_with_fail_on_drift_raises(caplog):
    drift = {"drifted": True, "previous_run_id": "run-1", "reasons": ["segment 0 'Big' moved 0.40 z (limit 0.25)"]}
    with caplog.at_level(logging.WARNING, logger="segmentation.drift"):
        enforce_drift(drift, DriftConfig())
    assert [r.getMessage() for r in caplog.records] == [
        "drift: the segments drifted since run run-1: segment 0 'Big' moved 0.40 z (limit 0.25)"]
    with pytest.raises(DriftError, match="nothing was published"):
        enforce_drift(drift, DriftConfig(fail_on_drift=True))
    enforce_drift(None, DriftConfig(fail_on_drift=True))  # a first run cannot drift
    enforce_drift({**drift, "drifted": False}, DriftConfig(fail_on_drift=True))


@pytest.fixture(scope="module")
def periods(spark, tmp_path_factory):
    """Three periods of the same planted customers: period 2 with random moves (10%), leavers (5%)
    and newcomers (5%); period 3 with 30% of customers moving into planted segment 0."""
    base = tmp_path_factory.mktemp("periods")
    paths = {}
    for number, period in ((1, Period()), (2, Period(2)), (3, Period(3, moved=0.3, move_to=0))):
        paths[number] = str(base / f"period{number}")
        generate_customers(spark, ROWS, 5, SEED, 2, period).write.parquet(paths[number])
    return paths


def labels_of(output) -> pd.DataFrame:
    table = pd.read_parquet(os.path.join(output, "labels"), columns=["customer_id", "segment"])
    return table.assign(segment=table["segment"].astype(int))


def test_two_periods_keep_their_segments_and_the_migrations_match_the_labels_and_the_truth(spark, periods, tmp_path):
    output = str(tmp_path / "weekly")
    config = lambda number: small_config(**{"input.path": periods[number], "output.path": output,  # noqa: E731
                                            "input.id_col": "customer_id", "k.max": 6,
                                            "report.enabled": number == 2})  # the page is checked once
    first = run_segmentation(spark, config(1))
    assert first["migrations"] is None and first["drift"] is None and "migrations" not in first["outputs"]
    week1 = labels_of(output)
    truth1 = pd.read_parquet(periods[1], columns=["customer_id", "true_segment"])
    # Each planted segment is one segment of the first run (the planted segments are well apart).
    number_of = week1.merge(truth1).groupby("true_segment")["segment"].agg(lambda s: s.mode()[0]).to_dict()
    assert first["chosen_k"] == 5 and len(set(number_of.values())) == 5

    second = run_segmentation(spark, config(2))
    assert second["lineage"]["new"] == [] and second["lineage"]["retired"] == []
    week2 = labels_of(output)
    truth2 = pd.read_parquet(periods[2], columns=["customer_id", "true_segment"])
    assert week2.merge(truth2).groupby("true_segment")["segment"].agg(lambda s: s.mode()[0]).to_dict() == number_of

    # The table is the full outer join of the two runs' labels, counted.
    joined = week1.merge(week2, on="customer_id", how="outer", suffixes=("_from", "_to"))
    expected = (joined.groupby(["segment_from", "segment_to"], dropna=False).size().rename("customers").reset_index())
    table = spark.read.parquet(os.path.join(output, "migrations"))
    assert table.schema.simpleString() == spark.createDataFrame([], MIGRATIONS_SCHEMA).schema.simpleString()
    got = table.select("from_segment", "to_segment", "customers").toPandas()
    merged = got.merge(expected, left_on=["from_segment", "to_segment"], right_on=["segment_from", "segment_to"],
                       how="outer", suffixes=("", "_expected"))
    assert len(merged) == len(got) == len(expected) and (merged["customers"] == merged["customers_expected"]).all()
    names = {s["segment"]: s["segment_name"] for s in second["segments"]}
    assert all(names[r.to_segment] == r.to_segment_name for r in table.where("to_segment IS NOT NULL").collect())

    # Against the truth: who left and who joined exactly; who moved, as well as the clustering.
    facts = second["migrations"]
    true_join = truth1.merge(truth2, on="customer_id", how="outer", suffixes=("_1", "_2"))
    assert facts["gone_customers"] == true_join["true_segment_2"].isna().sum()
    assert facts["new_customers"] == true_join["true_segment_1"].isna().sum() == ROWS * Period.joined
    both = true_join.dropna()
    assert facts["stability"] == pytest.approx((both["true_segment_1"] == both["true_segment_2"]).mean(), abs=0.01)
    assert 0.85 < facts["stability"] < 0.95  # 10% moved, some to the segment they had

    # Random moves keep the shares and the centroids: no drift.
    assert not second["drift"]["drifted"], second["drift"]["reasons"]
    assert max(s["centroid_shift_z"] for s in second["drift"]["segments"]) < 0.1
    on_disk = json.load(open(os.path.join(output, "manifest.json")))
    assert on_disk["migrations"] == facts and on_disk["outputs"]["migrations"] == f"{output}/migrations"
    page = open(os.path.join(output, "report", "report.html"), encoding="utf-8").read()
    assert "<h3>Drift</h3>" in page and "No drift beyond the limits." in page
    assert f"{facts['stability']:.1%} of the {facts['returning_customers']:,} returning customers" in page
    assert os.path.getsize(os.path.join(output, "report", "migrations.png")) > 10_000

    # Period 3: 30% move into planted segment 0. With --fail-on-drift: exit 3, one error line,
    # the published run untouched.
    before = digest(output)
    code, stderr = run_segment(["--input", periods[3], "--output", output, "--id-col", "customer_id",
                                "--k-max", "6", "--fail-on-drift", "--no-report",
                                "--set", "elbow.seeds_per_k=1", "--set", "elbow.max_iter=30"])
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert code == 3 and len(errors) == 1, stderr[-2000:]
    grown = number_of[0]
    assert f"segment {grown} " in errors[0] and "nothing was published (--fail-on-drift)" in errors[0]
    assert digest(output) == before and not [p for p in os.listdir(tmp_path) if p.startswith(".weekly.")
                                             and not p.endswith(".lock")]

    # Without the flag the drifted run publishes, and says where it drifted.
    third = run_segmentation(spark, config(3))
    assert third["drift"]["drifted"]
    share = {s["segment"]: s for s in third["drift"]["segments"]}[grown]
    assert share["share_change"] > 0.15 and any(f"segment {grown} " in r and "share" in r for r in third["drift"]["reasons"])
    expected_rows = spark.createDataFrame(
        labels_of(output).merge(week2, on="customer_id", how="outer", suffixes=("_to", "_from"))
        .groupby(["segment_from", "segment_to"], dropna=False).size().rename("customers").reset_index()
        .astype({"segment_from": "Int32", "segment_to": "Int32", "customers": "int64"}),
        "from_segment INT, to_segment INT, customers LONG")
    assert_df_equality(spark.read.parquet(os.path.join(output, "migrations")).drop("from_segment_name", "to_segment_name", "share"),
                       expected_rows, ignore_row_order=True, ignore_nullable=True)

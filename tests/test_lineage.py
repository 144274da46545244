"""Stable identities: a run keeps the previous run's segment numbers and names for the segments
it finds again, numbers new ones past any number the lineage used, and records the retired."""

from __future__ import annotations

import itertools
import json
import os
import random

import pandas as pd
import pytest

from conftest import MALL, MALL_CONFIG, small_config
from segmentation.config import LineageConfig
from segmentation.errors import InputError
from segmentation.features import Scaling
from segmentation.job import run_segmentation
from segmentation.label import Segment
from segmentation.lineage import PreviousRun, PreviousSegment, _assignment, carry_identities


def segment(number: int, name: str, z: tuple[float, float], rows: int = 10) -> Segment:
    return Segment(number=number, cluster=number, name=name, centroid_z=z, centroid=z, fitted_rows=rows)


def previous_run(*segments: PreviousSegment, highest: int | None = None, dims=("a", "b")) -> PreviousRun:
    return PreviousRun(path="prev", run_id="run-1", lineage_id="lineage-0", dimensions=dims,
                       mean=(0.0, 0.0), std=(1.0, 1.0), segments=segments,
                       highest_segment=max(s.number for s in segments) if highest is None else highest)


SCALING = Scaling(("a", "b"), (0.0, 0.0), (1.0, 1.0))


def test_the_first_run_of_a_lineage_keeps_the_size_order():
    new = [segment(0, "Big", (0.0, 0.0)), segment(1, "Small", (3.0, 3.0))]
    carried, facts = carry_identities(new, SCALING, None, LineageConfig(), "run-9")
    assert carried == new
    assert (facts["lineage_id"], facts["previous_run_id"], facts["new"], facts["highest_segment"]) == ("run-9", None, [0, 1], 1)


def test_matched_segments_keep_number_and_name_new_ones_never_reuse_a_number_and_the_rest_retire():
    previous = previous_run(PreviousSegment(0, "High-Value", (2.0, 2.0)), PreviousSegment(3, "Mainstream", (0.0, 0.0)),
                            PreviousSegment(5, "Budget", (-2.0, 2.0)), highest=7)
    new = [segment(0, "Mainstream", (0.1, -0.1), 50),  # near 3
           segment(1, "High-Value", (2.2, 1.9), 30),   # near 0
           segment(2, "Mainstream", (-3.0, -3.0), 20)]  # far from all: new
    carried, facts = carry_identities(new, SCALING, previous, LineageConfig(match_limit_z=1.0), "run-2")
    assert [(s.number, s.name, s.fitted_rows) for s in carried] == [
        (0, "High-Value", 30), (3, "Mainstream", 50), (8, "Mainstream (2)", 20)]
    assert facts["previous_run_id"] == "run-1" and facts["lineage_id"] == "lineage-0"
    assert [p["segment"] for p in facts["pairs"]] == [0, 3]
    assert facts["pairs"][0]["distance_z"] == pytest.approx((0.2 ** 2 + 0.1 ** 2) ** 0.5)
    assert facts["new"] == [8] and facts["retired"] == [{"segment": 5, "segment_name": "Budget"}]
    assert facts["highest_segment"] == 8


def test_centroids_are_compared_in_the_previous_runs_scaled_space():
    # The same point, (10, 100) in transformed units, under two different scalers.
    previous = PreviousRun("p", "r1", "r1", ("a", "b"), (0.0, 0.0), (10.0, 100.0),
                           (PreviousSegment(4, "Kept", (1.0, 1.0)),), 4)
    now = Scaling(("a", "b"), (5.0, 50.0), (5.0, 50.0))  # (10, 100) is z = (1, 1) here too
    carried, facts = carry_identities([segment(0, "X", (1.0, 1.0))], now, previous, LineageConfig(), "r2")
    assert (carried[0].number, carried[0].name) == (4, "Kept") and facts["pairs"][0]["distance_z"] == 0.0


def test_other_model_dimensions_start_a_new_lineage():
    previous = previous_run(PreviousSegment(0, "Old", (0.0, 0.0)), dims=("a", "c"))
    carried, facts = carry_identities([segment(0, "New", (0.0, 0.0))], SCALING, previous, LineageConfig(), "r2")
    assert carried[0].name == "New" and facts["lineage_id"] == "r2" and "other model dimensions" in facts["reason"]
    # Named explicitly (--previous PATH), the same mismatch is bad input: the user asked to carry it on.
    with pytest.raises(InputError, match=r"other model dimensions \(a, c\) than this run \(a, b\).*--previous none"):
        carry_identities([segment(0, "New", (0.0, 0.0))], SCALING, previous, LineageConfig(previous="prev"), "r2")


def test_the_assignment_is_the_least_total_distance_of_all_one_to_one_pairings():
    rng = random.Random(5)
    for rows, cols in [(3, 3), (4, 2), (2, 5), (5, 5)]:
        cost = [[rng.uniform(0, 4) for _ in range(cols)] for _ in range(rows)]
        pairs = _assignment(cost)
        if rows <= cols:  # every row paired with a distinct column
            best = min(sum(cost[r][c] for r, c in enumerate(p)) for p in itertools.permutations(range(cols), rows))
        else:
            best = min(sum(cost[r][c] for c, r in enumerate(p)) for p in itertools.permutations(range(rows), cols))
        assert len(pairs) == min(rows, cols)
        assert sum(cost[r][c] for r, c in pairs) == pytest.approx(best)


def labels(output) -> pd.DataFrame:
    table = pd.read_parquet(os.path.join(output, "labels"), columns=["CustomerID", "segment", "segment_name"])
    table = table.assign(segment=table["segment"].astype(int), CustomerID=table["CustomerID"].astype(int))
    return table.set_index("CustomerID").sort_index()


def test_weekly_runs_keep_their_segments(spark, tmp_path):
    output = str(tmp_path / "mall")
    first = run_segmentation(spark, small_config(**MALL_CONFIG, **{"output.path": output}))
    assert first["lineage"]["previous_run_id"] is None and first["lineage"]["new"] == [0, 1, 2, 3, 4]
    week1 = labels(output)

    # The same customers again, into the same output: the same numbers and names, nothing moved.
    second = run_segmentation(spark, small_config(**MALL_CONFIG, **{"output.path": output}))
    assert second["lineage"]["previous_run_id"] == first["run_id"]
    assert second["lineage"]["lineage_id"] == first["run_id"]
    assert [p["segment"] for p in second["lineage"]["pairs"]] == [0, 1, 2, 3, 4]
    assert max(p["distance_z"] for p in second["lineage"]["pairs"]) < 0.05
    pd.testing.assert_frame_equal(labels(output), week1)

    # One segment's customers leave; K = 4 is asked for: four segments keep their numbers, names
    # and customers, the fifth retires.
    gone = int(week1["segment"].value_counts().idxmin())
    remaining = tmp_path / "remaining.csv"
    mall = pd.read_csv(MALL, dtype={"CustomerID": str})  # ids stay text: "0001", as in the first runs
    mall[~mall["CustomerID"].astype(int).isin(week1.index[week1["segment"] == gone])].to_csv(remaining, index=False)
    third = run_segmentation(spark, small_config(**{**MALL_CONFIG, "input.path": str(remaining),
                                                    "output.path": output, "k.fixed": 4}))
    assert third["lineage"]["retired"] == [{"segment": gone, "segment_name": week1.loc[week1["segment"] == gone, "segment_name"].iloc[0]}]
    assert third["lineage"]["new"] == []
    assert third["drift"]["drifted"] and f"segment {gone} " in third["drift"]["reasons"][-1]  # a retired segment
    assert third["migrations"]["gone_customers"] == int((week1["segment"] == gone).sum())
    assert third["migrations"]["stability"] == 1.0  # everyone who came back kept their segment
    week3 = labels(output)
    pd.testing.assert_frame_equal(week3, week1.loc[week3.index])
    profiles = pd.read_parquet(os.path.join(output, "profiles"))
    assert sorted(profiles["segment"].astype(int)) == sorted(set(range(5)) - {gone})  # a gap where it was
    page = open(os.path.join(output, "report", "report.html"), encoding="utf-8").read()
    assert "<h2>Since the previous run</h2>" in page and f"<dt>Previous run</dt><dd>{second['run_id']}</dd>" in page
    gone_name = third["lineage"]["retired"][0]["segment_name"]
    assert f"<dt>Retired</dt><dd>{gone} {gone_name}</dd>" in page.replace("&amp;", "&")

    # Everyone back, and K = 6: a segment that is new to the lineage gets 5, never a retired number.
    fourth = run_segmentation(spark, small_config(**MALL_CONFIG, **{"output.path": output, "k.fixed": 6}))
    numbers = [s["segment"] for s in fourth["segments"]]
    assert len(set(numbers)) == 6 and all(n >= 5 for n in fourth["lineage"]["new"])
    assert not set(fourth["lineage"]["new"]) & set(range(5))
    assert fourth["lineage"]["highest_segment"] == max(numbers + [4])
    names = {s["segment"]: s["segment_name"] for s in fourth["segments"]}
    for pair in fourth["lineage"]["pairs"]:
        assert names[pair["segment"]] == pair["segment_name"]
    on_disk = json.load(open(os.path.join(output, "manifest.json")))
    assert on_disk["lineage"] == json.loads(json.dumps(fourth["lineage"])) and on_disk["schema_version"] == 9


def test_previous_none_starts_a_new_lineage_and_a_named_previous_run_is_read(spark, tmp_path):
    first_out, second_out = str(tmp_path / "a"), str(tmp_path / "b")
    first = run_segmentation(spark, small_config(**MALL_CONFIG, **{"output.path": first_out}))
    named = run_segmentation(spark, small_config(**MALL_CONFIG, **{"output.path": second_out,
                                                                    "lineage.previous": first_out}))
    assert named["lineage"]["previous_run_id"] == first["run_id"] and len(named["lineage"]["pairs"]) == 5
    fresh = run_segmentation(spark, small_config(**MALL_CONFIG, **{"output.path": second_out, "lineage.previous": "none"}))
    assert fresh["lineage"]["previous_run_id"] is None and fresh["lineage"]["lineage_id"] == fresh["run_id"]
    with pytest.raises(InputError, match="previous run not found: .*nowhere has no manifest.json"):
        run_segmentation(spark, small_config(**MALL_CONFIG, **{"output.path": str(tmp_path / "c"),
                                                                "lineage.previous": str(tmp_path / "nowhere")}))
    assert not (tmp_path / "c").exists()
    with pytest.raises(InputError, match="other model dimensions"):  # named, with other features: bad input
        run_segmentation(spark, small_config(**{**MALL_CONFIG, "input.features": "Age,Annual Income (k$)",
                                                "output.path": str(tmp_path / "d"), "lineage.previous": first_out}))
    assert not (tmp_path / "d").exists()

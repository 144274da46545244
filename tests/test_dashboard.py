"""report/dashboard.html without a browser: its data is the run's tables, bounded, and it fetches nothing
(the browser checks are tests/test_browser.py, make test-browser)."""

from __future__ import annotations

import json
import os
import re

import pandas as pd
import pytest

from segmentation.dashboard import write_dashboard


def page_data(path: str) -> dict:
    with open(path, encoding="utf-8") as handle:
        page = handle.read()
    # Nothing to fetch: no script or style by address, only inline ones (the browser test blocks the network).
    markup = re.sub(r"<script[^>]*>.*?</script>", "", page, flags=re.S)
    assert not re.search(r"<script[^>]*\ssrc=|<link\b|https?://", markup)
    found = re.search(r'<script id="dashboard-data" type="application/json">(.*?)</script>', page, re.S)
    return json.loads(found.group(1))


@pytest.fixture(scope="module")
def published(spark, customers_path, tmp_path_factory):
    from segmentation.job import run_segmentation
    from tests.conftest import small_config

    output = str(tmp_path_factory.mktemp("dashboard") / "out")
    run_segmentation(spark, small_config(**{"input.path": customers_path, "output.path": output,
                                            "report.top_customers": 20}))
    return output


def test_the_page_holds_the_profiles_and_true_top_customers(published):
    data = page_data(os.path.join(published, "report", "dashboard.html"))
    profiles = pd.read_parquet(os.path.join(published, "profiles")).sort_values("segment")
    labels = pd.read_parquet(os.path.join(published, "labels"))
    assert [s["segment"] for s in data["segments"]] == profiles["segment"].tolist()
    for card, row in zip(data["segments"], profiles.to_dict("records")):
        assert (card["name"], card["customers"]) == (row["segment_name"], row["customers"])
        assert card["share"] == pytest.approx(row["share"])
        for feature in data["features"]:
            assert card["means"][feature] == pytest.approx(row[f"{feature}_mean"])
        assert 1 <= len(card["facts"]) <= 3
    # Of each segment, the top 20 by every rank column are in the page: the exact top, not a sample's.
    top = pd.DataFrame(data["top_customers"]["rows"]["rows"], columns=data["top_customers"]["rows"]["columns"])
    id_col = data["id_col"]
    for column in data["top_customers"]["rank_columns"]:
        for segment, members in labels.groupby("segment", observed=True):
            best = members.nlargest(20, column)[column].sort_values(ascending=False).to_numpy()
            mine = top[top["segment"] == segment].nlargest(20, column)[column].to_numpy()
            assert mine == pytest.approx(best), (column, segment)
    assert top.groupby("segment").size().max() <= 20 * len(data["top_customers"]["rank_columns"])
    assert top[id_col].is_unique
    samples = pd.DataFrame(data["samples"]["rows"], columns=data["samples"]["columns"])
    assert samples.groupby("segment").size().max() <= 100  # report.scatter_rows_per_segment in tests
    assert len(data["map"]["x"]) == len(samples)
    assert data["elbow"]["chosen_k"] == len(data["segments"])


def test_the_page_does_not_grow_with_the_customers(published, tmp_path):
    """The same run with its labels ten times over: the page's data is no larger."""
    import shutil

    import pyarrow.dataset as ds

    bigger = tmp_path / "bigger"
    shutil.copytree(published, bigger)
    labels = ds.dataset(os.path.join(published, "labels"), partitioning="hive").to_table().to_pandas()
    for copy in range(1, 10):
        more = labels.assign(customer_id=labels["customer_id"].astype(str) + f"-{copy}")
        for segment, part in more.groupby("segment", observed=True):
            part.drop(columns="segment").to_parquet(bigger / "labels" / f"segment={segment}" / f"copy-{copy}.parquet")
    small = os.path.getsize(write_dashboard(published, 100, 20))
    large = os.path.getsize(write_dashboard(str(bigger), 100, 20))
    assert abs(large - small) < 0.01 * small

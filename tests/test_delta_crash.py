"""A Delta run SIGKILLed at every point of its publish (make test-crash): each table stays readable
at the previous run's versions with nothing lost, a reader resolving through the runs table sees
one whole run, and the next run clears what the killed one left."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest
from deltalake import DeltaTable

from conftest import ROOT, delta_files_listed, delta_files_on_disk, submit_env
from segmentation.delta import TABLES, read_runs

pytestmark = pytest.mark.crash

MALL = str(ROOT / "tests" / "data" / "Mall_Customers.csv")
ARGS = ["jobs/segment.py", "--input", MALL, "--input-format", "csv", "--id-col", "CustomerID",
        "--features", "Annual Income (k$),Spending Score (1-100)", "--k-max", "6",
        "--set", "elbow.seeds_per_k=1", "--output-format", "delta", "--set", "output.keep_runs=2"]
# Every point of the publish where a kill leaves a different state on disk.
FAILPOINTS = ("before-commit", "after-labels", "after-profiles", "after-elbow", "after-migrations", "after-runs")


def job(output: str, failpoint: str | None = None) -> dict:
    """The job's command on ``output`` as subprocess arguments (``SEGMENTATION_FAILPOINT`` set or cleared)."""
    env = submit_env()
    env.pop("SEGMENTATION_FAILPOINT", None)
    if failpoint:
        env["SEGMENTATION_FAILPOINT"] = failpoint
    return {"args": [str(ROOT / "spark-submit.sh"), *ARGS, "--output", output], "cwd": ROOT, "env": env}


def submit(output: str, failpoint: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(**job(output, failpoint), capture_output=True, text=True, timeout=600)


def resolve(output: str) -> dict:
    """What a reader gets by the README's way to read: the last row of runs, then each table at its version."""
    run = read_runs(output)[-1]
    tables = {part: DeltaTable(f"{output}/{part}", version=run[f"{part}_version"]).to_pyarrow_table()
              for part in TABLES if run[f"{part}_version"] is not None}
    return {"run": run, "tables": tables}


def check_whole(resolved: dict) -> None:
    """The tables a reader resolved all belong to the run its runs row names."""
    manifest, tables = json.loads(resolved["run"]["manifest"]), resolved["tables"]
    numbers = sorted(s["segment"] for s in manifest["segments"])
    assert tables["labels"].num_rows == manifest["labelled_rows"] == resolved["run"]["labelled_rows"]
    assert sorted(set(tables["labels"].column("segment").to_pylist())) == numbers
    assert sorted(tables["profiles"].column("segment").to_pylist()) == numbers
    assert sum(tables["profiles"].column("customers").to_pylist()) == manifest["labelled_rows"]
    chosen = [row["k"] for row in tables["elbow"].to_pylist() if row["chosen"]]
    assert chosen == [manifest["chosen_k"]]
    if "migrations" in tables:
        arrived = sum(r["customers"] for r in tables["migrations"].to_pylist() if r["to_segment"] is not None)
        assert arrived == manifest["labelled_rows"]


def canonical(tables: dict) -> dict:
    """Each table's rows, in an order that does not depend on the files'."""
    return {part: sorted(json.dumps(row, sort_keys=True, default=str) for row in table.to_pylist())
            for part, table in tables.items()}


@pytest.fixture(scope="module")
def output(tmp_path_factory):
    """A Delta output with two published runs (so that a run carries on a lineage, with migrations)."""
    path = str(tmp_path_factory.mktemp("crash") / "segments")
    for _ in range(2):
        result = submit(path)
        assert result.returncode == 0, result.stderr[-3000:]
    return path


@pytest.mark.parametrize("failpoint", FAILPOINTS)
def test_a_run_killed_at_any_point_of_its_publish_loses_nothing(output, failpoint):
    before = resolve(output)
    killed = submit(output, failpoint)
    assert killed.returncode != 0 and f"failpoint {failpoint}: killing the job" in killed.stderr, killed.stderr[-2000:]
    after = resolve(output)
    if failpoint == "after-runs":  # published: the killed run is the last, whole; only its vacuum was lost
        assert after["run"]["previous_run_id"] == before["run"]["run_id"]
        manifest = json.loads(after["run"]["manifest"])
        assert after["tables"]["labels"].num_rows == manifest["labelled_rows"] == 200
        assert sorted(after["tables"]["profiles"].column("segment").to_pylist()) == sorted(
            s["segment"] for s in manifest["segments"])
    else:  # not published: readers resolve the previous run, table for table as it was
        assert after["run"]["run_id"] == before["run"]["run_id"]
        assert canonical(after["tables"]) == canonical(before["tables"])
    # The previous run stays readable at its own versions whatever the kill left.
    for part in TABLES:
        version = before["run"][f"{part}_version"]
        if version is not None:
            again = DeltaTable(f"{output}/{part}", version=version).to_pyarrow_table()
            assert canonical({part: again}) == canonical({part: before["tables"][part]})


def test_a_reader_beside_a_publish_sees_the_old_run_or_the_new_one_never_a_mix(output):
    old = read_runs(output)[-1]["run_id"]
    process = subprocess.Popen(**job(output), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seen = []
    try:
        while process.poll() is None:
            resolved = resolve(output)
            check_whole(resolved)
            seen.append(resolved["run"]["run_id"])
            time.sleep(0.2)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.wait() == 0
    resolved = resolve(output)
    check_whole(resolved)
    new = resolved["run"]["run_id"]
    assert new != old and seen[0] == old and set(seen) <= {old, new}, seen
    assert seen == sorted(seen, key=lambda run_id: run_id == new)  # once the new run shows, it stays


def test_the_run_after_the_kills_publishes_and_vacuums_what_they_left(output):
    result = submit(output)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = read_runs(output)
    kept = runs[-2:]
    for part in TABLES:  # the killed runs' files are gone
        assert delta_files_on_disk(f"{output}/{part}") == delta_files_listed(output, part, kept), part
    folders = set(os.listdir(os.path.join(output, "artifacts")))
    assert folders == {r["run_id"] for r in kept}
    assert json.loads(runs[-1]["manifest"])["lineage"]["previous_run_id"] == runs[-2]["run_id"]

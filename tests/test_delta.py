"""output.format delta: the tables as delta-rs and pyarrow read them, version by version, against the
same runs published as plain Parquet; retention; and bad input that must leave the tables as they were."""

from __future__ import annotations

import json
import os

import pandas as pd
import pytest
from deltalake import DeltaTable

from conftest import delta_files_listed, delta_files_on_disk, run_segment, small_config
from segmentation.delta import TABLES, read_runs
from segmentation.job import run_segmentation
from segmentation.synthetic import Period, generate_customers
from test_cli import digest

ROWS, SEED = 3000, 11
KEY = ["customer_id", "segment", "segment_name"]


def sorted_labels(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame[KEY].astype({"segment": "int64"})
    return frame.sort_values("customer_id").reset_index(drop=True)


@pytest.fixture(scope="module")
def weekly(spark, tmp_path_factory):
    """Three weeks of the same customers, each week published to one Delta output and, beside it,
    as plain Parquet to a folder of its own (the same config and seed: the same labels)."""
    base = tmp_path_factory.mktemp("delta")
    delta_out = str(base / "segments")
    weeks = []
    for period in (1, 2, 3):
        data = str(base / f"week{period}")
        generate_customers(spark, ROWS, 4, SEED, 2, Period(period)).write.parquet(data)
        plain = str(base / f"plain{period}")
        previous = str(base / f"plain{period - 1}") if period > 1 else "none"
        plain_manifest = run_segmentation(spark, small_config(**{"input.path": data, "output.path": plain,
                                                                 "lineage.previous": previous, "seed": 3,
                                                                 "k.max": 6, "report.enabled": False}))
        manifest = run_segmentation(spark, small_config(**{"input.path": data, "output.path": delta_out, "seed": 3,
                                                           "output.format": "delta", "output.keep_runs": 2,
                                                           "k.max": 6}))
        weeks.append({"data": data, "plain": plain, "plain_manifest": plain_manifest, "manifest": manifest})
    return delta_out, weeks


def test_each_run_is_one_version_of_each_table_named_by_the_runs_table(weekly):
    output, weeks = weekly
    runs = read_runs(output)
    assert [r["run_id"] for r in runs] == [w["manifest"]["run_id"] for w in weeks]
    assert [r["previous_run_id"] for r in runs] == [None, runs[0]["run_id"], runs[1]["run_id"]]
    assert runs[0]["migrations_version"] is None and runs[1]["migrations_version"] is not None
    for part in ("labels", "profiles", "elbow"):
        versions = [r[f"{part}_version"] for r in runs]
        assert versions == sorted(set(versions)), versions  # a new version per run
    last = weeks[-1]["manifest"]
    assert json.loads(runs[-1]["manifest"])["run_id"] == last["run_id"]
    assert last["delta"]["versions"]["labels"] == runs[-1]["labels_version"]
    assert last["outputs"]["labels"] == f"{output}/labels"
    assert os.path.isfile(os.path.join(last["outputs"]["report"], "report.html"))
    from pyspark.ml import PipelineModel

    assert PipelineModel.load(last["outputs"]["model"]).stages  # the scoring contract, beside the tables
    assert [h["operation"] for h in DeltaTable(f"{output}/runs").history()].count("WRITE") >= 2


def test_the_tables_hold_what_the_same_runs_publish_as_parquet(weekly):
    output, weeks = weekly
    runs = read_runs(output)
    for week, run in zip(weeks[1:], runs[1:]):  # the two runs that retention keeps
        delta_labels = DeltaTable(f"{output}/labels", version=run["labels_version"]).to_pandas()
        plain_labels = pd.read_parquet(os.path.join(week["plain"], "labels"))
        pd.testing.assert_frame_equal(sorted_labels(delta_labels), sorted_labels(plain_labels))
        for part in ("profiles", "migrations"):
            delta_rows = DeltaTable(f"{output}/{part}", version=run[f"{part}_version"]).to_pyarrow_table()
            plain_rows = pd.read_parquet(os.path.join(week["plain"], part))
            by = ["segment"] if part == "profiles" else ["from_segment", "to_segment"]
            pd.testing.assert_frame_equal(
                delta_rows.to_pandas().sort_values(by).reset_index(drop=True)[plain_rows.columns],
                plain_rows.sort_values(by).reset_index(drop=True), check_dtype=False)
    assert weeks[-1]["manifest"]["migrations"] == weeks[-1]["plain_manifest"]["migrations"]
    assert weeks[-1]["manifest"]["lineage"]["previous_run_id"] == runs[1]["run_id"]


def test_an_earlier_run_reads_by_version_and_by_timestamp(weekly):
    output, weeks = weekly
    second = read_runs(output)[1]
    by_version = DeltaTable(f"{output}/labels", version=second["labels_version"]).to_pyarrow_table()
    table = DeltaTable(f"{output}/labels")
    table.load_as_version(pd.Timestamp(second["published_at"]).to_pydatetime())
    assert table.version() >= second["labels_version"]
    by_time = table.to_pyarrow_table()
    assert by_time.num_rows == by_version.num_rows == second["labelled_rows"]
    current = DeltaTable(f"{output}/labels").to_pyarrow_table()
    assert current.num_rows == weeks[-1]["manifest"]["labelled_rows"]


def test_retention_keeps_the_last_runs_files_and_nothing_else(weekly):
    output, weeks = weekly
    runs = read_runs(output)
    assert len(runs) == 3  # the runs table keeps every run's row
    first, kept = runs[0], runs[1:]
    with pytest.raises(Exception):  # its files are vacuumed
        DeltaTable(f"{output}/labels", version=first["labels_version"]).to_pyarrow_table()
    assert not os.path.exists(first["artifacts"]) and all(os.path.isdir(r["artifacts"]) for r in kept)
    for part in TABLES:
        assert delta_files_on_disk(f"{output}/{part}") == delta_files_listed(output, part, kept), part
    assert not os.path.exists(os.path.join(output, "labels", first["run_id"]))


def test_a_failed_run_leaves_every_table_and_file_as_it_was(weekly, tmp_path):
    output, weeks = weekly
    before = digest(output)
    code, err = run_segment(["--input", weeks[0]["data"], "--output", output, "--output-format", "delta",
                             "--features", "age,no_such_column"])
    assert code == 2 and err.strip().splitlines()[-1].startswith("error: column 'no_such_column' not found")
    assert digest(output) == before


def test_formats_do_not_replace_each_other(weekly, tmp_path):
    output, weeks = weekly
    plain = weeks[0]["plain"]
    before_delta, before_plain = digest(output), digest(plain)
    code, err = run_segment(["--input", weeks[0]["data"], "--output", plain, "--output-format", "delta"])
    assert code == 2 and "holds a Parquet publish (output.format parquet)" in err.splitlines()[-1]
    code, err = run_segment(["--input", weeks[0]["data"], "--output", output])
    assert code == 2 and "holds Delta tables (output.format delta)" in err.splitlines()[-1]
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    code, err = run_segment(["--input", weeks[0]["data"], "--output", str(foreign), "--output-format", "delta"])
    assert code == 2 and "is not a segmentation output" in err.splitlines()[-1]
    assert digest(output) == before_delta and digest(plain) == before_plain
    assert sorted(os.listdir(foreign)) == ["notes.txt"]


def test_storage_options_are_not_written_to_the_manifest():
    config = small_config(**{"output.format": "delta", "output.storage_options": {"AWS_SECRET_ACCESS_KEY": "s3cr3t"}})
    assert config.output.storage_options == {"AWS_SECRET_ACCESS_KEY": "s3cr3t"}
    assert config.to_dict()["output"]["storage_options"] == {"AWS_SECRET_ACCESS_KEY": "***"}


def test_a_previous_delta_output_that_cannot_be_read_is_named_in_one_error_line(weekly, tmp_path):
    output, weeks = weekly
    broken = tmp_path / "broken"
    os.makedirs(broken / "runs" / "_delta_log")
    (broken / "runs" / "_delta_log" / "00000000000000000000.json").write_text("{not json\n")
    fresh = str(tmp_path / "fresh")
    code, err = run_segment(["--input", weeks[0]["data"], "--output", fresh, "--output-format", "delta",
                             "--previous", str(broken)])
    assert code == 2, err[-2000:]
    assert err.strip().splitlines()[-1].startswith(f"error: previous run {broken} cannot be read: ")
    assert not os.path.exists(fresh) or not os.listdir(fresh)


def test_the_readmes_way_to_read_a_delta_output_reads_the_last_run(weekly):
    import re

    from conftest import ROOT

    output, weeks = weekly
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    (block,) = [b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if 'DeltaTable("output/runs")' in b]
    names: dict = {}
    exec(block.replace('"output/', f'"{output}/'), names)  # noqa: S102 - the README's own snippet
    last = weeks[-1]["manifest"]
    assert names["manifest"]["run_id"] == last["run_id"]
    assert len(names["labels"]) == last["labelled_rows"]
    assert sorted(names["profiles"].column("segment").to_pylist()) == sorted(s["segment"] for s in last["segments"])


def test_the_report_redraws_the_last_run_of_a_delta_output(weekly):
    import subprocess
    import sys

    from conftest import ROOT

    output, weeks = weekly
    report = weeks[-1]["manifest"]["outputs"]["report"]
    os.remove(os.path.join(report, "scatter.png"))
    result = subprocess.run([sys.executable, "-m", "segmentation.report", output],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    assert os.path.exists(os.path.join(report, "scatter.png"))
    assert os.path.exists(os.path.join(report, "migrations.png"))  # the last run carried on a lineage

"""The staging-and-swap publish on a real local file system."""

import json
import os

import pytest

from segmentation.errors import InputError
from segmentation.publish import Publisher


def publish(output, run_id, marker, spark=None):
    publisher = Publisher.for_output(spark, str(output), run_id)
    publisher.begin()
    os.makedirs(publisher.path("labels"))
    with open(os.path.join(publisher.path("labels"), "part-0"), "w") as handle:
        handle.write(marker)
    return publisher


def test_commit_swaps_in_a_complete_output_and_leaves_nothing_beside_it(tmp_path):
    output = tmp_path / "segments"
    publish(output, "run1", "first").commit({"run_id": "run1"})
    assert sorted(os.listdir(output)) == ["_SUCCESS", "labels", "manifest.json"]
    second = publish(output, "run2", "second")
    # Until the commit, the first publish is untouched and the second lives beside it.
    assert (output / "labels" / "part-0").read_text() == "first"
    assert sorted(os.listdir(tmp_path)) == [".segments.lock", ".segments.staging-run2", "segments"]
    second.commit({"run_id": "run2"})
    assert (output / "labels" / "part-0").read_text() == "second"
    assert json.loads((output / "manifest.json").read_text()) == {"run_id": "run2"}
    assert sorted(os.listdir(tmp_path)) == [".segments.lock", "segments"]


def test_abort_removes_staging_and_keeps_the_last_publish(tmp_path):
    output = tmp_path / "segments"
    publish(output, "run1", "first").commit({"run_id": "run1"})
    publish(output, "run2", "second").abort()
    assert (output / "labels" / "part-0").read_text() == "first"
    assert sorted(os.listdir(tmp_path)) == [".segments.lock", "segments"]


def test_a_directory_that_is_not_an_output_is_never_replaced(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="is not a segmentation output"):
        Publisher.for_output(None, str(tmp_path), "run1")
    empty = tmp_path / "empty"
    empty.mkdir()
    Publisher.for_output(None, str(empty), "run1")  # an empty directory may be filled


def test_a_second_run_on_the_same_output_is_refused_while_the_first_holds_it(tmp_path):
    output = tmp_path / "segments"
    first = publish(output, "run1", "first")
    with pytest.raises(InputError, match=r"another run is publishing to .*segments \(run run1, pid \d+\)"):
        Publisher.for_output(None, str(output), "run2")
    first.commit({"run_id": "run1"})
    publish(output, "run3", "third").commit({"run_id": "run3"})  # free again once committed


def test_leftovers_of_a_killed_run_are_cleared_and_a_half_swap_is_undone(tmp_path):
    output = tmp_path / "segments"
    publish(output, "run1", "first").commit({"run_id": "run1"})
    # A run killed after its first rename: OUTPUT is gone, the last publish waits beside it.
    os.rename(output, tmp_path / ".segments.previous-run2")
    os.makedirs(tmp_path / ".segments.staging-run2" / "labels")
    os.makedirs(tmp_path / ".segments.staging-run0")
    publisher = Publisher.for_output(None, str(output), "run3")
    assert (output / "labels" / "part-0").read_text() == "first"
    assert sorted(os.listdir(tmp_path)) == [".segments.lock", "segments"]
    publisher.abort()


def test_an_output_that_is_a_file_or_under_a_file_is_an_input_error(tmp_path):
    (tmp_path / "report.csv").write_text("a,b\n")
    with pytest.raises(InputError, match=r"output .*report.csv is a file, not a directory"):
        Publisher.for_output(None, str(tmp_path / "report.csv"), "run1")
    with pytest.raises(InputError, match="cannot write beside the output"):
        Publisher.for_output(None, str(tmp_path / "report.csv" / "segments"), "run1")
    assert (tmp_path / "report.csv").read_text() == "a,b\n"

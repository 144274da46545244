"""make test-packed-env: a packed environment (make packed-env: the project installed, not
editable, packed with venv-pack) runs the executors of a standalone cluster on 127.0.0.1, in
client mode, through ./spark-submit.sh --packed-env.

Spark has no cluster deploy mode for Python on a standalone master, so the driver runs here;
the executors unpack the archive (--archives ...#environment) into their working directory and
run ./environment/bin/python, as on YARN and Kubernetes.
"""

from __future__ import annotations

import json
import os
import subprocess

import pandas as pd
import pytest

from conftest import MALL, ROOT
from test_cluster import cluster, environment  # noqa: F401 (the cluster fixture)

pytestmark = pytest.mark.packed

PACKED_ENV = os.environ.get("PACKED_ENV", str(ROOT / "build" / "env.tar.gz"))
MALL_ARGS = ["--input", str(MALL), "--input-format", "csv", "--id-col", "CustomerID",
             "--features", "Annual Income (k$),Spending Score (1-100)"]

# Where each executor's Python runs from, and where it imports pandas and the project from.
PROBE = """
import sys
from pyspark.sql import SparkSession

def where(_):
    import pandas, segmentation
    yield " ".join((sys.prefix, pandas.__file__, segmentation.__file__))

spark = SparkSession.builder.getOrCreate()
for line in sorted(set(spark.sparkContext.parallelize(range(4), 4).mapPartitions(where).collect())):
    print("executor:", line)
spark.stop()
"""


def submit(master: str, args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(ROOT / "spark-submit.sh"), "--master", master, "--packed-env", PACKED_ENV,
         "--executor-memory", "1g", "--conf", "spark.cores.max=2", *args],
        cwd=ROOT, env=environment(), capture_output=True, text=True, timeout=900,
    )


def test_the_packed_environment_was_built():
    assert os.path.isfile(PACKED_ENV), f"{PACKED_ENV} is missing: run make packed-env"


def test_executors_run_the_packed_python_and_import_the_project_from_it(cluster, tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    done = submit(cluster, [str(probe)])
    assert done.returncode == 0, done.stderr[-4000:]
    lines = [line.split(" ")[1:] for line in done.stdout.splitlines() if line.startswith("executor:")]
    assert lines, done.stdout
    for prefix, pandas, project in lines:
        # The executor's working directory holds the unpacked archive: .../work/app-*/N/environment
        assert prefix.endswith("/environment") and "/work/app-" in prefix, prefix
        assert pandas.startswith(prefix + "/lib/"), pandas  # its libraries, not this machine's
        # the code of this submission, shipped with --py-files, comes before the installed copy
        assert project.endswith("segmentation.zip/segmentation/__init__.py"), project


def test_the_job_on_the_packed_environment_publishes_what_local_mode_does(cluster, tmp_path):
    packed = str(tmp_path / "packed")
    done = submit(cluster, ["jobs/segment.py", *MALL_ARGS, "--output", packed])
    assert done.returncode == 0, done.stderr[-4000:]
    local = str(tmp_path / "local")
    done = subprocess.run([str(ROOT / "spark-submit.sh"), "jobs/segment.py", *MALL_ARGS, "--output", local],
                          cwd=ROOT, env=environment(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    manifest = json.load(open(os.path.join(packed, "manifest.json")))
    assert manifest["master"] == cluster and manifest["elbow_engine"] == "tasks"
    assert manifest["chosen_k"] == json.load(open(os.path.join(local, "manifest.json")))["chosen_k"] == 5

    def labels(path):
        table = pd.read_parquet(os.path.join(path, "labels"))
        return table.assign(segment=table["segment"].astype(int)).sort_values("CustomerID").reset_index(drop=True)

    pd.testing.assert_frame_equal(labels(packed), labels(local), rtol=1e-9)

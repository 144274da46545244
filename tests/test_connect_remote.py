"""A remote Spark Connect server, as Databricks serverless or a shared server is: its Python
workers run an environment with pandas, pyarrow and numpy but without this project. The job
ships its package as a Python artifact, and publishes the same segments as in local mode.

Heavy (it builds that environment): ``make test-connect-remote``, which .ci/run calls.
"""

import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from conftest import ROOT, small_config
from segmentation.job import run_segmentation
from test_connect import connect_server_at

pytestmark = pytest.mark.remote

WORKER_PACKAGES = ("pandas", "pyarrow", "numpy")


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory):
    """A venv with the workers' packages (the versions of this one) and not the project."""
    from importlib.metadata import version

    venv = tmp_path_factory.mktemp("bare") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    pins = [f"{name}=={version(name)}" for name in WORKER_PACKAGES]
    installed = subprocess.run([python, "-m", "pip", "install", "--quiet", *pins], capture_output=True, text=True)
    assert installed.returncode == 0, installed.stderr[-3000:]
    probe = subprocess.run([python, "-c", "import segmentation"], capture_output=True, text=True, cwd="/")
    assert probe.returncode != 0 and "No module named 'segmentation'" in probe.stderr
    return python


@pytest.fixture(scope="module")
def remote_server(tmp_path_factory, bare_python):
    yield from connect_server_at(tmp_path_factory.mktemp("remote-connect"), bare_python)


def test_a_remote_server_without_the_project_publishes_the_local_segments(
        spark, remote_server, customers_path, tmp_path):
    output = str(tmp_path / "remote")
    env = dict(os.environ, PYSPARK_DRIVER_PYTHON=sys.executable)
    for key in ("SPARK_HOME", "PYSPARK_PYTHON"):
        env.pop(key, None)
    result = subprocess.run(
        [str(ROOT / "spark-submit.sh"), "--remote", remote_server, "jobs/segment.py", "--input", customers_path,
         "--output", output, "--k-max", "7", "--no-report"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert "shipped the segmentation package" in result.stderr
    manifest = json.load(open(os.path.join(output, "manifest.json")))
    assert manifest["elbow_engine"] == "tasks" and manifest["chosen_k"] == 5
    local = str(tmp_path / "local")
    run_segmentation(spark, small_config(**{"input.path": customers_path, "output.path": local, "k.max": 7,
                                           "report.enabled": False, "elbow.seeds_per_k": 2}))
    remote_labels = pd.read_parquet(os.path.join(output, "labels"))[["customer_id", "segment"]]
    local_labels = pd.read_parquet(os.path.join(local, "labels"))[["customer_id", "segment"]]
    pairs = remote_labels.merge(local_labels, on="customer_id", suffixes=("_remote", "_local"))
    assert len(pairs) == 6000
    assert (pairs["segment_remote"].astype(int) == pairs["segment_local"].astype(int)).all()

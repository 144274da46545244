"""Spark Connect: the Connect server that ships with the installed pyspark, bound to 127.0.0.1,
and the segment job run through it unchanged (./spark-submit.sh --remote sc://...)."""

import json
import os
import socket
import subprocess
import sys
import time

import pyspark
import pytest

from conftest import ROOT, TEST_JVM_OPTIONS, free_port, stop_process_group

SBIN = os.path.join(os.path.dirname(pyspark.__file__), "sbin")


def listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def connect_server(tmp_path_factory):
    """sc://127.0.0.1:PORT, a local[2] Connect server; stopped however the tests end."""
    yield from connect_server_at(tmp_path_factory.mktemp("connect"), sys.executable)


def connect_server_at(logs, workers_python: str):
    """A local[2] Connect server on 127.0.0.1 whose Python workers run ``workers_python``."""
    port = free_port()
    env = dict(os.environ, SPARK_NO_DAEMONIZE="1", SPARK_LOG_DIR=str(logs), SPARK_PID_DIR=str(logs),
               SPARK_LOCAL_IP="127.0.0.1", PYSPARK_PYTHON=workers_python,
               SPARK_SUBMIT_OPTS=TEST_JVM_OPTIONS)  # the server's JVM: the class archive, C1
    env.pop("SPARK_HOME", None)
    env.pop("SPARK_REMOTE", None)
    server = subprocess.Popen(
        [os.path.join(SBIN, "start-connect-server.sh"), "--master", "local[2]", "--driver-memory", "2g",
         "--conf", "spark.connect.grpc.binding.address=127.0.0.1",
         "--conf", f"spark.connect.grpc.binding.port={port}"],
        env=env, stdout=open(logs / "server.out", "w"), stderr=subprocess.STDOUT, start_new_session=True,
        cwd=logs,  # not the project: its workers (python -m pyspark.daemon) would import it from there
    )
    try:
        deadline = time.monotonic() + 120
        while not listening(port):
            if server.poll() is not None or time.monotonic() > deadline:
                texts = [open(logs / name).read()[-2000:] for name in os.listdir(logs)
                         if os.path.isfile(logs / name)]
                raise AssertionError("the Connect server did not start:\n" + "\n".join(texts))
            time.sleep(0.1)
        yield f"sc://127.0.0.1:{port}"
    finally:
        stop_process_group(server)


def test_the_segment_job_runs_unchanged_through_spark_connect(connect_server, customers_path, tmp_path):
    output = str(tmp_path / "segments")
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable)
    env.pop("SPARK_HOME", None)
    result = subprocess.run(
        [str(ROOT / "spark-submit.sh"), "--remote", connect_server, "jobs/segment.py",
         "--input", customers_path, "--output", output, "--k-max", "7", "--set", "elbow.seeds_per_k=1"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    manifest = json.load(open(os.path.join(output, "manifest.json")))
    assert manifest["chosen_k"] == 5
    assert manifest["labelled_rows"] == 6000
    assert sorted(n for n in os.listdir(os.path.join(output, "labels")) if n.startswith("segment=")) == [
        f"segment={s}" for s in range(5)
    ]
    assert os.path.exists(os.path.join(output, "model", "metadata"))
    assert os.path.exists(os.path.join(output, "report", "report.html"))


def test_bad_input_through_spark_connect_is_one_error_line(connect_server, tmp_path):
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable)
    result = subprocess.run(
        [str(ROOT / "spark-submit.sh"), "--remote", connect_server, "jobs/segment.py",
         "--input", str(tmp_path / "missing"), "--output", str(tmp_path / "out")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 2, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "missing" in errors[0]
    assert not os.path.exists(tmp_path / "out")


def test_transactions_and_their_rfm_stage_run_through_spark_connect(connect_server, tmp_path):
    import pandas as pd
    from test_rfm import planted_transactions

    sales = tmp_path / "sales.csv"
    pd.DataFrame(planted_transactions(), columns=["customer_id", "date", "invoice", "amount"]).to_csv(sales, index=False)
    output = str(tmp_path / "rfm")
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable)
    env.pop("SPARK_HOME", None)
    result = subprocess.run(
        [str(ROOT / "spark-submit.sh"), "--remote", connect_server, "jobs/segment.py", "--input-kind",
         "transactions", "--input", str(sales), "--input-format", "csv", "--order-col", "invoice",
         "--date-format", "yyyyMMdd", "--k-max", "4", "--k", "3", "--set", "elbow.seeds_per_k=1",
         "--output", output],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    manifest = json.load(open(os.path.join(output, "manifest.json")))
    assert manifest["transactions"]["transactions"] == len(planted_transactions())
    assert {s["segment_name"] for s in manifest["segments"]} == {"Champions", "Hibernating", "New"}

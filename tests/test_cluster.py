"""A real Spark standalone cluster on 127.0.0.1: a master and one worker from the installed
pyspark's spark-class, the segment job submitted to it through ./spark-submit.sh."""

import json
import os
import subprocess
import sys
import time

import pyspark
import pytest

from conftest import QUICK_COMPILER_OPTIONS, ROOT, TEST_JVM_OPTIONS, free_port, stop_process_group

SPARK_CLASS = os.path.join(os.path.dirname(pyspark.__file__), "bin", "spark-class")


def environment() -> dict:
    env = dict(os.environ, SPARK_LOCAL_IP="127.0.0.1", SPARK_NO_DAEMONIZE="1",
               PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable)
    env.pop("SPARK_HOME", None)
    env.pop("SPARK_MASTER", None)
    # The master's and the worker's JVMs map the class archive too (the same jars, on this machine),
    # and all of them compile with C1 only (spark-submit.sh maps the archive for the driver).
    env["SPARK_DAEMON_JAVA_OPTS"] = TEST_JVM_OPTIONS
    env["SPARK_SUBMIT_OPTS"] = QUICK_COMPILER_OPTIONS.strip()
    return env


def start(args: list, log_path, ready: str, timeout: float = 90) -> subprocess.Popen:
    """Starts a daemon in its own process group; waits until its log says ``ready``."""
    log = open(log_path, "w")
    daemon = subprocess.Popen([SPARK_CLASS, *args], env=environment(), stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready in open(log_path).read():
            return daemon
        if daemon.poll() is not None:
            break
        time.sleep(0.1)
    stop_process_group(daemon, grace=20)
    raise AssertionError(f"{args[0]} did not start:\n{open(log_path).read()[-3000:]}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """spark://127.0.0.1:PORT with one 2-core worker; both stopped however the tests end."""
    logs = tmp_path_factory.mktemp("standalone")
    port = free_port()
    daemons = []
    try:
        daemons.append(start(
            ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port),
             "--webui-port", str(free_port())],
            logs / "master.log", "I have been elected leader"))
        master = f"spark://127.0.0.1:{port}"
        daemons.append(start(
            ["org.apache.spark.deploy.worker.Worker", master, "--host", "127.0.0.1",
             "--port", str(free_port()), "--webui-port", str(free_port()), "--cores", "2",
             "--memory", "3g", "--work-dir", str(logs / "work")],
            logs / "worker.log", "Successfully registered with master"))
        yield master
    finally:
        for daemon in reversed(daemons):
            stop_process_group(daemon, grace=20)


def test_the_segment_job_runs_on_a_standalone_cluster(cluster, customers_path, tmp_path):
    output = str(tmp_path / "segments")
    result = subprocess.run(
        [str(ROOT / "spark-submit.sh"), "--master", cluster, "--executor-memory", "2g",
         "--conf", "spark.cores.max=2", "--conf", f"spark.executor.extraJavaOptions={TEST_JVM_OPTIONS}",
         "jobs/segment.py", "--input", customers_path,
         "--output", output, "--k-max", "7", "--set", "elbow.seeds_per_k=1"],
        cwd=ROOT, env=environment(), capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    manifest = json.load(open(os.path.join(output, "manifest.json")))
    assert manifest["master"] == cluster
    assert manifest["chosen_k"] == 5
    assert manifest["labelled_rows"] == 6000
    assert sorted(n for n in os.listdir(os.path.join(output, "labels")) if n.startswith("segment=")) == [
        f"segment={s}" for s in range(5)
    ]
    assert os.path.exists(os.path.join(output, "report", "report.html"))

"""Shared fixtures: one local[2] SparkSession for the whole run, and small real datasets."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# The tests carry their own data (tests/data/README.md says where it came from).
DATA = ROOT / "tests" / "data"
MALL = DATA / "Mall_Customers.csv"
# The job's config for Mall's two classic features (small_config's overrides), K up to 7.
MALL_CONFIG = {
    "input.path": str(MALL), "input.format": "csv", "input.id_col": "CustomerID",
    "input.features": "Annual Income (k$),Spending Score (1-100)", "k.max": 7,
}

# Java's class-data sharing archive of a local run's classes (make jvm-classes, which make test
# builds first): the tests' JVMs map it, as ./spark-submit.sh's do, for 2 s less start-up each.
JVM_CLASSES = ROOT / "build" / "jvm-classes.jsa"
JVM_CLASSES_OPTIONS = (
    f" -XX:SharedArchiveFile={JVM_CLASSES} -Xlog:cds=off -Xlog:cds+dynamic=off" if JVM_CLASSES.exists() else ""
)

# The tests' short-lived JVMs (the spark-submit runs, a cluster's daemons and executor, the Connect
# server, a plain-Python session) compile with the JVM's quick compiler only (C1), with room for
# its code: they run briefly, and on 2 cores the optimising compiler (C2) spends the CPU on code
# that does not run long enough to pay it back. Without the larger code cache C1's code fills the
# default 48 MB and the JVM stops compiling. The tests' own session keeps both compilers: over the
# whole suite C2's code pays (302.4 s without C1 there, 323.1 s with it, one run each). So does the
# job as users run it (at 10M rows C1 is slower: BENCHMARKS.md).
QUICK_COMPILER_OPTIONS = " -XX:TieredStopAtLevel=1 -XX:ReservedCodeCacheSize=256m"
# What every other JVM the tests start gets (the Connect server, a standalone cluster's daemons and
# executor, a plain-Python session): the archive and the quick compiler.
TEST_JVM_OPTIONS = (JVM_CLASSES_OPTIONS + QUICK_COMPILER_OPTIONS).strip()



def submit_env(**env_vars) -> dict[str, str]:
    """The environment of a test's ``./spark-submit.sh`` run: local[2], this Python, a 2 GiB driver,
    and the quick compiler (C1; spark-submit.sh maps the class archive itself). A SPARK_SUBMIT_OPTS
    given is added to the compiler's options; SPARK_HOME is cleared (the installed pyspark's runs)."""
    java = f"{QUICK_COMPILER_OPTIONS} {env_vars.pop('SPARK_SUBMIT_OPTS', '')}".strip()
    env = dict(os.environ, SPARK_MASTER="local[2]", PYSPARK_PYTHON=sys.executable,
               PYSPARK_DRIVER_PYTHON=sys.executable, SPARK_DRIVER_MEMORY="2g", SPARK_SUBMIT_OPTS=java,
               **env_vars)
    env.pop("SPARK_HOME", None)
    return env


# Spark's Python workers must run this interpreter, the one with the project installed.
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)


@pytest.fixture(scope="session")
def spark():
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[2]")
        .appName("segmentation-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.scheduler.mode", "FAIR")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.memory", "2g")
        .config(
            "spark.driver.extraJavaOptions",
            f"-Dlog4j2.configurationFile=file:{ROOT / 'conf' / 'log4j2.properties'}{JVM_CLASSES_OPTIONS}",
        )
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("WARN")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def customers_path(spark, tmp_path_factory) -> str:
    """6,000 synthetic customers from 5 planted segments, as Parquet in 3 files."""
    from segmentation.synthetic import generate_customers

    path = str(tmp_path_factory.mktemp("data") / "customers")
    generate_customers(spark, 6000, segments=5, seed=11, partitions=3).write.parquet(path)
    return path


def small_config(**overrides):
    """The job's config, sized for a few thousand rows in tests."""
    from segmentation.config import load_config

    base = {
        "k.min": 2,
        "k.max": 8,
        "elbow.seeds_per_k": 1,
        "elbow.parallelism": 4,
        "elbow.max_iter": 30,
        "report.scatter_rows_per_segment": 100,
    }
    base.update(overrides)
    return load_config(None, base)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def stop_process_group(process: subprocess.Popen, grace: float = 30) -> None:
    """SIGTERM to a process started with start_new_session=True and all its children; SIGKILL
    if they are still there after ``grace`` seconds."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def run_command(command: str, args: list[str]) -> tuple[int, str]:
    """A command of segmentation.commands (segment, score, generate) in-process, on the tests'
    session: its exit code and its stderr. The same main() that spark-submit and the console
    scripts call, without a JVM's start-up per run."""
    import contextlib
    import importlib
    import io

    main = importlib.import_module(f"segmentation.commands.{command}").main
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            code = main(args)
        except SystemExit as exc:  # argparse's usage errors exit through the Parser
            code = exc.code
    return code, err.getvalue()


def run_segment(args: list[str]) -> tuple[int, str]:
    """The ``segment`` command in-process (run_command)."""
    return run_command("segment", args)


def delta_files_on_disk(table: str) -> set[str]:
    """Every data file under a Delta table's folder, relative to it (the log and hidden files left out)."""
    found = set()
    for folder, subfolders, files in os.walk(table):
        subfolders[:] = [d for d in subfolders if d != "_delta_log"]
        found |= {os.path.relpath(os.path.join(folder, f), table) for f in files if not f.startswith((".", "_"))}
    return found


def delta_files_listed(output: str, part: str, runs: list[dict]) -> set[str]:
    """The data files that the versions of ``part`` named by these rows of ``runs`` list."""
    import pyarrow as pa
    from deltalake import DeltaTable

    listed = set()
    for run in runs:
        if run[f"{part}_version"] is not None:
            table = DeltaTable(f"{output}/{part}", version=run[f"{part}_version"])
            listed |= set(pa.table(table.get_add_actions()).column("path").to_pylist())
    return listed

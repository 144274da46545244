"""./spark-submit.sh's command for each master and deploy mode, checked with --print-command
(nothing runs), and its one-line errors for what cannot work."""

import os
import shlex
import subprocess
import sys

import pytest

from conftest import JVM_CLASSES, ROOT


def submit(*args, env=None, cwd=ROOT):
    environment = dict(os.environ, PYSPARK_DRIVER_PYTHON=sys.executable, **(env or {}))
    for key in ("SPARK_MASTER", "SPARK_REMOTE", "SPARK_HOME", "PYSPARK_PYTHON"):
        environment.pop(key, None) if key not in (env or {}) else None
    return subprocess.run([str(ROOT / "spark-submit.sh"), *args], cwd=cwd, env=environment,
                          capture_output=True, text=True, timeout=120)


def printed(*args, env=None) -> list[str]:
    result = submit("--print-command", *args, env=env)
    assert result.returncode == 0, result.stderr
    return shlex.split(result.stdout)


def submit_args(words: list[str]) -> list[str]:
    """The spark-submit arguments of a printed client-mode command (inside PYSPARK_SUBMIT_ARGS)."""
    assignment = next(w for w in words if w.startswith("PYSPARK_SUBMIT_ARGS="))
    return shlex.split(assignment.split("=", 1)[1])


@pytest.fixture()
def packed_env(tmp_path):
    archive = tmp_path / "env.tar.gz"
    archive.write_bytes(b"")
    return str(archive)


def test_local_mode_runs_this_machines_python_with_the_logging_config_at_its_path():
    words = printed("jobs/segment.py", "--input", "a b")
    args = submit_args(words)
    assert args[:4] == ["--master", "local[*]", "--deploy-mode", "client"]
    assert words[-4:] == [sys.executable, "jobs/segment.py", "--input", "a b"]
    assert f"PYSPARK_PYTHON={sys.executable}" in words  # local mode: the workers run this Python too
    java = args[args.index("--driver-java-options") + 1]
    assert f"-Dlog4j2.configurationFile=file:{ROOT}/conf/log4j2.properties" in java and "-XX:+UseParallelGC" in java
    # The class-data sharing archive, where make has built it (make test always has).
    assert (f"-XX:SharedArchiveFile={JVM_CLASSES} -Xlog:cds=off" in java) == JVM_CLASSES.exists()
    files = args[args.index("--files") + 1].split(",")
    assert f"{ROOT}/conf/log4j2.properties" in files and f"{ROOT}/conf/cluster.yaml" in files
    assert args[-1] == "pyspark-shell"


@pytest.mark.parametrize("master", ["yarn", "k8s://https://127.0.0.1:6443"])
def test_cluster_deploy_mode_ships_the_packed_environment_and_names_shipped_files(master, packed_env):
    words = printed("--master", master, "--deploy-mode", "cluster", "--packed-env", packed_env,
                    "jobs/segment.py", "--config", "cluster.yaml", "--input", "hdfs:///lake/customers",
                    env={"PYSPARK_PYTHON": "./environment/bin/python"})
    assert words[0].endswith("/bin/spark-submit")  # spark-submit itself: no Python runs here
    assert words[words.index("--master") + 1] == master and words[words.index("--deploy-mode") + 1] == "cluster"
    assert words[words.index("--archives") + 1] == f"{packed_env}#environment"
    confs = [words[i + 1] for i, w in enumerate(words) if w == "--conf"]
    assert "spark.pyspark.python=./environment/bin/python" in confs
    assert "spark.pyspark.driver.python=./environment/bin/python" in confs
    assert ("spark.yarn.appMasterEnv.PYSPARK_PYTHON=./environment/bin/python" in confs) == (master == "yarn")
    assert "spark.executor.extraJavaOptions=-Dlog4j2.configurationFile=log4j2.properties" in confs
    assert words[words.index("--driver-java-options") + 1] == "-Dlog4j2.configurationFile=log4j2.properties"
    assert words[-5:] == ["jobs/segment.py", "--config", "cluster.yaml", "--input", "hdfs:///lake/customers"]
    assert sys.executable not in words and not any(w.endswith("=" + sys.executable) for w in words)


@pytest.mark.parametrize("master", ["yarn", "k8s://https://127.0.0.1:6443", "spark://127.0.0.1:7077"])
def test_client_mode_on_a_cluster_runs_the_driver_here_and_the_executors_in_the_packed_environment(master, packed_env):
    words = printed("--master", master, "--packed-env", packed_env, "jobs/segment.py",
                    env={"PYSPARK_PYTHON": sys.executable})  # a leftover of local runs is overridden
    assert words[-2:] == [sys.executable, "jobs/segment.py"]  # never the packed Python here
    # the driver's Python tells the executors to run the packed one
    assert "PYSPARK_PYTHON=./environment/bin/python" in words
    args = submit_args(words)
    confs = [args[i + 1] for i, w in enumerate(args) if w == "--conf"]
    assert "spark.pyspark.python=./environment/bin/python" in confs
    assert f"spark.pyspark.driver.python={sys.executable}" in confs
    assert args[args.index("--archives") + 1] == f"{packed_env}#environment"
    # The driver's JVM starts here: it maps the class-data sharing archive where make built it.
    java = args[args.index("--driver-java-options") + 1]
    assert (f"-XX:SharedArchiveFile={JVM_CLASSES} -Xlog:cds=off" in java) == JVM_CLASSES.exists()


def test_spark_connect_runs_the_job_as_a_plain_client():
    words = printed("--remote", "sc://127.0.0.1:15002", "jobs/segment.py", "--input", "x")
    assert words[0] == "SPARK_REMOTE=sc://127.0.0.1:15002" and words[-3:] == ["jobs/segment.py", "--input", "x"]


@pytest.mark.parametrize("args, message", [
    (["--master", "mesos://h:5050"], "error: unknown master 'mesos://h:5050'"),
    (["--deploy-mode", "server"], "error: unknown deploy mode 'server'"),
    (["--master", "yarn", "--deploy-mode", "cluster"], "error: --deploy-mode cluster needs --packed-env"),
    (["--master", "local[2]", "--deploy-mode", "cluster"], "error: --deploy-mode cluster needs a cluster master"),
    (["--master", "spark://127.0.0.1:7077", "--deploy-mode", "cluster", "--packed-env", "x"],
     "error: Spark has no cluster deploy mode for Python on a standalone master"),
    (["--master", "yarn", "--packed-env", "/nonexistent/env.tar.gz"], "error: packed environment not found"),
])
def test_what_cannot_work_is_one_error_line_and_exit_2(args, message):
    result = submit(*args, "jobs/segment.py")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith(message) and result.stderr.count("\n") == 1, result.stderr


def test_the_shipped_package_is_the_scripts_own_whatever_the_current_directory(tmp_path):
    """The zip for --py-files is built from the package beside spark-submit.sh, not from a
    ``segmentation`` folder that happens to be in the directory it is run from."""
    import zipfile

    other = tmp_path / "segmentation"
    other.mkdir()
    (other / "__init__.py").write_text("")
    (other / "package.py").write_text("raise SystemExit('the wrong package was zipped')\n")
    result = submit("--print-command", str(ROOT / "jobs" / "segment.py"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    with zipfile.ZipFile(ROOT / "build" / "segmentation.zip") as archive:
        assert "segmentation/job.py" in archive.namelist()

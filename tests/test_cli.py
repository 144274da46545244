"""The real entry points, as users run them: ./spark-submit.sh in a subprocess."""

import hashlib
import json
import os
import re
import subprocess
import sys

import pandas as pd
import pytest

from conftest import ROOT


def submit(*args, timeout=600):
    env = dict(os.environ, SPARK_MASTER="local[2]", PYSPARK_PYTHON=sys.executable,
               PYSPARK_DRIVER_PYTHON=sys.executable, SPARK_DRIVER_MEMORY="2g")
    env.pop("SPARK_HOME", None)
    return subprocess.run([str(ROOT / "spark-submit.sh"), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def digest(directory):
    """A hash of every file's path and bytes under ``directory``."""
    h = hashlib.sha256()
    for folder, _, files in sorted(os.walk(directory)):
        for name in sorted(files):
            path = os.path.join(folder, name)
            h.update(os.path.relpath(path, directory).encode())
            h.update(open(path, "rb").read())
    return h.hexdigest()


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """20,000 customers in 4 planted segments, generated and segmented by the real jobs."""
    base = tmp_path_factory.mktemp("cli")
    data, output = str(base / "customers"), str(base / "segments")
    generated = submit("jobs/generate.py", "--rows", "20000", "--segments", "4", "--seed", "5",
                       "--partitions", "2", "--output", data)
    assert generated.returncode == 0, generated.stderr[-3000:]
    segmented = submit("jobs/segment.py", "--input", data, "--output", output, "--k-max", "8")
    assert segmented.returncode == 0, segmented.stderr[-3000:]
    return data, output, segmented


def test_spark_submit_runs_the_job_end_to_end(published):
    data, output, result = published
    assert f"report: {output}/report/report.html" in result.stdout
    assert "stage sweep done" in result.stderr and "elbow k=4" in result.stderr
    manifest = json.load(open(os.path.join(output, "manifest.json")))
    assert manifest["chosen_k"] == 4 and manifest["master"] == "local[2]"
    assert manifest["labelled_rows"] == 20000
    labels = pd.read_parquet(os.path.join(output, "labels"))
    truth = pd.read_parquet(data)
    assert sorted(labels["customer_id"]) == sorted(truth["customer_id"])  # each customer exactly once
    visible = [n for n in os.listdir(os.path.join(output, "labels")) if not n.startswith(".")]
    assert sorted(visible) == ["_SUCCESS"] + [f"segment={s}" for s in range(4)]
    # The planted segments come back whole: each found segment holds one planted segment.
    pairs = labels.merge(truth[["customer_id", "true_segment"]], on="customer_id")
    assert pairs.groupby("segment", observed=True)["true_segment"].nunique().max() == 1


def test_report_runs_alone_on_a_published_output(published):
    _, output, _ = published
    for name in ("elbow.png", "scatter.png"):
        os.remove(os.path.join(output, "report", name))
    result = subprocess.run([sys.executable, "-m", "segmentation.report", output],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert os.path.exists(os.path.join(output, "report", "elbow.png"))
    assert os.path.exists(os.path.join(output, "report", "scatter.png"))
    bad = subprocess.run([sys.executable, "-m", "segmentation.report", str(ROOT / "conf")],
                         capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 2 and bad.stderr.startswith("error: ")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--input", "/nonexistent/customers"], "error: input not found: /nonexistent/customers"),
        (["--features", "age,income"], "error: column 'income' not found in the input; it has: customer_id, age,"),
        (["--k-min", "6", "--k-max", "4"], "error: k.min (6) must not exceed k.max (4)"),
        (["--k-min", "1"], "error: k.min must be at least 2, got 1"),
        (["--set", "elbow.paralelism=3"], "error: unknown config key elbow.paralelism; did you mean elbow.parallelism?"),
        (["--frobnicate"], "error: unrecognized arguments: --frobnicate"),
        (["--input", "FEW_CSV", "--input-format", "csv", "--id-col", "id", "--features", "x,y"],
         "error: only 3 distinct customers (feature combinations) to cluster, fewer than k.max = 10"),
        (["--input-kind", "transactions", "--date-col", "age", "--amount-col", "spend"],
         "error: amount column 'spend' not found in the transactions; they have: customer_id, age,"),
    ],
)
def test_bad_input_exits_2_with_one_error_line_and_keeps_the_last_publish(published, tmp_path, args, message):
    data, output, _ = published
    few = tmp_path / "few.csv"
    few.write_text("id,x,y\n" + "".join(f"{i},{i % 3},{i % 3}\n" for i in range(12)))
    args = [str(few) if a == "FEW_CSV" else a for a in args]
    before = digest(output)
    full = ["--input", data, "--output", output, *args] if "--input" not in args else ["--output", output, *args]
    result = submit("jobs/segment.py", *full)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2, result.stderr[-3000:]
    assert len(errors) == 1 and errors[0].startswith(message), result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert digest(output) == before
    assert not [n for n in os.listdir(os.path.dirname(output)) if ".staging-" in n]


def test_score_job_labels_new_customers_like_the_run_did(published, tmp_path):
    data, output, _ = published
    scored_to = str(tmp_path / "scored")
    result = submit("jobs/score.py", "--model", f"{output}/model", "--input", data, "--output", scored_to)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "scored 20000 customers" in result.stdout
    key = ["customer_id", "segment", "segment_name"]
    scored = pd.read_parquet(os.path.join(scored_to, "labels"))[key].sort_values("customer_id")
    labels = pd.read_parquet(os.path.join(output, "labels"))[key].sort_values("customer_id")
    assert scored.astype(str).values.tolist() == labels.astype(str).values.tolist()
    bad = submit("jobs/score.py", "--model", f"{output}/model", "--input", str(ROOT / "conf"),
                 "--input-format", "csv", "--output", str(tmp_path / "bad"))
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert [l for l in bad.stderr.splitlines() if l.startswith("error:")][0].startswith(
        "error: column 'customer_id' not found in the input")


@pytest.mark.crash
@pytest.mark.parametrize("signal_name, after", [
    ("SIGKILL", "stage sweep ..."),
    ("SIGKILL", "stage label ..."),
    ("SIGTERM", "stage profile ..."),
    ("SIGKILL", "stage report ..."),
])
def test_a_killed_run_leaves_the_last_publish_byte_identical(published, signal_name, after):
    import signal
    import time

    data, output, _ = published
    before = digest(output)
    env = dict(os.environ, SPARK_MASTER="local[2]", PYSPARK_PYTHON=sys.executable,
               PYSPARK_DRIVER_PYTHON=sys.executable, SPARK_DRIVER_MEMORY="2g")
    process = subprocess.Popen(
        [str(ROOT / "spark-submit.sh"), "jobs/segment.py", "--input", data, "--output", output,
         "--k-max", "6", "--set", "elbow.seeds_per_k=1"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )
    seen, deadline = [], time.monotonic() + 300
    try:
        for line in process.stderr:
            seen.append(line)
            if after in line or time.monotonic() > deadline:
                break
    finally:
        os.killpg(process.pid, getattr(signal, signal_name))
        process.wait(timeout=60)
    assert any(after in line for line in seen), "".join(seen[-20:])
    assert digest(output) == before
    assert json.load(open(os.path.join(output, "manifest.json")))["labelled_rows"] == 20000


@pytest.mark.crash
def test_the_run_after_a_kill_clears_its_leftovers(published):
    data, output, _ = published
    parent = os.path.dirname(output)
    os.makedirs(os.path.join(parent, ".segments.staging-killed", "labels"), exist_ok=True)
    result = submit("jobs/segment.py", "--input", data, "--output", output, "--k-max", "6")
    assert result.returncode == 0, result.stderr[-3000:]
    assert not [n for n in os.listdir(parent) if ".staging-" in n or ".previous-" in n]
    assert json.load(open(os.path.join(output, "manifest.json")))["chosen_k"] == 4


def test_a_read_only_output_location_is_an_error_and_keeps_the_last_publish(published):
    data, output, _ = published
    parent = os.path.dirname(output)
    before = digest(output)
    # chattr +i stops root too, which plain permissions would not (the tests may run as root).
    if subprocess.run(["chattr", "+i", parent], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not available on this file system")
    try:
        result = submit("jobs/segment.py", "--input", data, "--output", output, "--k-max", "6")
    finally:
        subprocess.run(["chattr", "-i", parent], check=True)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2, result.stderr[-3000:]
    assert len(errors) == 1 and errors[0].startswith(
        f"error: cannot write beside the output {output}: Operation not permitted"), result.stderr[-2000:]
    assert digest(output) == before


def test_the_job_segments_transactions_from_the_command_line(tmp_path):
    from test_rfm import planted_transactions

    sales = tmp_path / "sales.csv"
    pd.DataFrame(planted_transactions(), columns=["Customer ID", "Invoice Date", "Invoice", "Amount"]) \
        .to_csv(sales, index=False)
    output = str(tmp_path / "rfm")
    result = submit("jobs/segment.py", "--input-kind", "transactions", "--input", str(sales), "--input-format",
                    "csv", "--customer-col", "Customer ID", "--date-col", "Invoice Date", "--amount-col", "Amount",
                    "--order-col", "Invoice", "--date-format", "yyyyMMdd", "--reference-date", "2025-01-15",
                    "--k-max", "5", "--k", "3", "--output", output)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "published 3 segments of 300 customers" in result.stdout
    manifest = json.load(open(os.path.join(output, "manifest.json")))
    assert manifest["transactions"]["reference_date"] == "2025-01-15"
    assert {s["segment_name"] for s in manifest["segments"]} == {"Champions", "Hibernating", "New"}
    labels = pd.read_parquet(os.path.join(output, "labels"))
    assert labels["recency_days"].min() >= 15  # counted to the given reference date


def test_a_healthy_run_prints_only_the_jobs_own_progress(published):
    # No JVM, netlib, DataSketches or hostname noise: one line per stage and per K, then the result.
    _, _, result = published
    lines = result.stderr.splitlines()
    strangers = [line for line in lines if not re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (INFO|WARNING) segment", line)]
    assert strangers == [], strangers
    assert sum(" elbow k=" in line for line in lines) == 7  # k = 2..8
    assert result.stdout.splitlines()[0].startswith("published 4 segments of 20000 customers")


def test_the_console_scripts_run_as_plain_python_on_a_local_session(tmp_path):
    # pip install . (here: the editable install of make venv) puts them on PATH.
    bin_dir = os.path.dirname(sys.executable)
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable, SPARK_LOCAL_IP="127.0.0.1")
    env.pop("SPARK_HOME", None)
    data, output = str(tmp_path / "customers"), str(tmp_path / "segments")
    generated = subprocess.run([os.path.join(bin_dir, "generate-customers"), "--rows", "3000", "--segments", "3",
                                "--output", data], env=env, capture_output=True, text=True, timeout=600)
    assert generated.returncode == 0, generated.stderr[-3000:]
    segmented = subprocess.run([os.path.join(bin_dir, "segment-customers"), "--input", data, "--output", output,
                                "--k-max", "5", "--no-report"], env=env, capture_output=True, text=True, timeout=600)
    assert segmented.returncode == 0, segmented.stderr[-3000:]
    assert json.load(open(os.path.join(output, "manifest.json")))["chosen_k"] == 3
    bad = subprocess.run([os.path.join(bin_dir, "score-customers"), "--model", output + "/nope", "--input", data,
                          "--output", str(tmp_path / "scored")], env=env, capture_output=True, text=True, timeout=600)
    assert bad.returncode == 2 and bad.stderr.splitlines()[-1].startswith("error: no saved model at ")

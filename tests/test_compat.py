"""make test-compat: every Spark line the project declares gives the same segments as this one.

``make test-compat`` builds one environment per older minor line (``conf/compat/spark-*.txt``:
pyspark with the numpy, pandas and pyarrow that go with it) and passes their interpreters in
``COMPAT_PYTHONS``. This test runs in the main environment (the newest Spark): it runs the
job here as the reference, then the same commands through ``./spark-submit.sh`` under each
older line, and compares what they published: the Mall segments (plain and one-hot with
clipping), the RFM segments of transactions, scoring, and the notebook.

Heavy (environments of their own, a subprocess per command): not part of ``make test``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pandas as pd
import pytest

from conftest import MALL, ROOT

pytestmark = pytest.mark.compat

PYTHONS = os.environ.get("COMPAT_PYTHONS", "").split()

MALL_ARGS = ["--input", str(MALL), "--input-format", "csv", "--id-col", "CustomerID"]
SEGMENT_RUNS = {
    "mall": [*MALL_ARGS, "--features", "Annual Income (k$),Spending Score (1-100)"],
    "mall-one-hot": [
        *MALL_ARGS, "--features", "Genre,Age,Annual Income (k$),Spending Score (1-100)",
        "--set", "input.transforms.Genre=[one_hot]",
        "--set", "input.transforms.Annual Income (k$)=[clip(0.01, 0.99)]",
    ],
    "transactions": [
        "--input-kind", "transactions", "--input", "{transactions}", "--customer-col", "customer_id",
        "--date-col", "date", "--amount-col", "amount", "--order-col", "invoice",
    ],
}


def submit(python: str, args: list[str]) -> subprocess.CompletedProcess:
    """``./spark-submit.sh ARGS`` with ``python`` as the driver's and the workers' Python."""
    bin_dir = os.path.dirname(python)
    env = dict(os.environ, PYSPARK_PYTHON=python, PYSPARK_DRIVER_PYTHON=python,
               PATH=f"{bin_dir}:{os.environ['PATH']}")
    env.pop("SPARK_HOME", None)
    done = subprocess.run([str(ROOT / "spark-submit.sh"), *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{python} {args[:2]}: exit {done.returncode}\n{done.stderr[-4000:]}"
    return done


def spark_line(python: str) -> str:
    done = subprocess.run([python, "-c", "import pyspark; print(pyspark.__version__)"],
                          capture_output=True, text=True, check=True)
    return ".".join(done.stdout.strip().split(".")[:2])


def publish(python: str, out, transactions: str) -> dict:
    """Every command of the comparison under ``python``; returns where each wrote."""
    outputs = {}
    for name, args in SEGMENT_RUNS.items():
        outputs[name] = str(out / name)
        args = [a.format(transactions=transactions) for a in args]
        submit(python, ["jobs/segment.py", *args, "--output", outputs[name]])
    outputs["scored"] = str(out / "scored")
    submit(python, ["jobs/score.py", "--model", os.path.join(outputs["mall"], "model"),
                    *MALL_ARGS, "--output", outputs["scored"]])
    return outputs


def labels(path: str, id_col: str) -> pd.DataFrame:
    table = pd.read_parquet(os.path.join(path, "labels"))
    table["segment"] = table["segment"].astype(int)
    return table.sort_values(id_col).reset_index(drop=True)


@pytest.fixture(scope="module")
def transactions(tmp_path_factory) -> str:
    """Synthetic transactions, written once (by this Spark) and read by every line."""
    path = str(tmp_path_factory.mktemp("compat") / "sales")
    submit(sys.executable, ["jobs/generate.py", "--kind", "transactions", "--rows", "30000",
                            "--customers", "3000", "--output", path])
    return path


@pytest.fixture(scope="module")
def reference(tmp_path_factory, transactions) -> dict:
    return publish(sys.executable, tmp_path_factory.mktemp("reference"), transactions)


def test_compat_environments_were_given():
    assert PYTHONS, "COMPAT_PYTHONS names no interpreter: run make test-compat, which builds them"


@pytest.mark.parametrize("python", PYTHONS, ids=[p.split("/")[-3] for p in PYTHONS])
def test_each_spark_line_publishes_the_same_segments(python, tmp_path, transactions, reference):
    line = spark_line(python)
    outputs = publish(python, tmp_path, transactions)
    for name in (*SEGMENT_RUNS, "scored"):
        manifest = json.loads(open(os.path.join(outputs[name], "manifest.json")).read())
        expected = json.loads(open(os.path.join(reference[name], "manifest.json")).read())
        assert manifest["spark_version"].startswith(line + "."), (name, manifest["spark_version"])
        id_col = "customer_id" if name == "transactions" else "CustomerID"
        got, want = labels(outputs[name], id_col), labels(reference[name], id_col)
        assert list(got.columns) == list(want.columns), name
        # The same customers in the same numbered, named segments; distances to the float.
        pd.testing.assert_frame_equal(got[[id_col, "segment", "segment_name"]],
                                      want[[id_col, "segment", "segment_name"]], obj=name)
        pd.testing.assert_series_equal(got["distance"], want["distance"], rtol=1e-9, obj=name)
        if name == "scored":
            continue
        assert manifest["chosen_k"] == expected["chosen_k"], name
        assert manifest["k_selection"]["decided_by"] == expected["k_selection"]["decided_by"], name
        got_profiles = pd.read_parquet(os.path.join(outputs[name], "profiles"))
        want_profiles = pd.read_parquet(os.path.join(reference[name], "profiles"))
        medians = [c for c in want_profiles.columns if c.endswith("_median")]
        pd.testing.assert_frame_equal(got_profiles.drop(columns=medians),
                                      want_profiles.drop(columns=medians), rtol=1e-9, obj=name)
        check_medians(got_profiles, want, medians, name)
    run_notebook(python, outputs["mall"], tmp_path / "executed.ipynb")


def check_medians(profiles: pd.DataFrame, labelled: pd.DataFrame, medians: list, name: str) -> None:
    """Each median is exact: between the two middle values of its segment's customers (the
    segments here are far smaller than where either method starts to approximate; which of
    the two middle values of an even count it takes is the method's own)."""
    for column in medians:
        feature = column[: -len("_median")]
        for segment, median in zip(profiles["segment"], profiles[column]):
            values = labelled.loc[labelled["segment"] == segment, feature].sort_values().tolist()
            low, high = values[(len(values) - 1) // 2], values[len(values) // 2]
            assert low <= median <= high, (name, column, segment, median, low, high)


def run_notebook(python: str, output: str, executed) -> None:
    """notebooks/segmentation.ipynb on ``output``, executed by a kernel of ``python``."""
    script = (
        "import sys, nbformat\n"
        "from nbclient import NotebookClient\n"
        "nb = nbformat.read(sys.argv[1], as_version=4)\n"
        "NotebookClient(nb, timeout=180, kernel_name='python3',\n"
        "               resources={'metadata': {'path': sys.argv[3]}}).execute()\n"
        "nbformat.write(nb, sys.argv[2])\n"
    )
    notebook = ROOT / "notebooks" / "segmentation.ipynb"
    env = dict(os.environ, SEGMENTATION_OUTPUT=output, PYSPARK_PYTHON=python)
    done = subprocess.run([python, "-c", script, str(notebook), str(executed), str(notebook.parent)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    cells = json.loads(open(executed).read())["cells"]
    texts = "".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", ""))
                    for c in cells if c["cell_type"] == "code" for o in c["outputs"])
    chosen = json.loads(open(os.path.join(output, "manifest.json")).read())["chosen_k"]
    assert re.search(rf"K = {chosen}: ", texts), texts[-2000:]
    assert any("image/png" in o.get("data", {}) for c in cells if c["cell_type"] == "code" for o in c["outputs"])

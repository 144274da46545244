"""The README is the manual: every local-mode command it shows runs here, as written.

The commands run in order, in a copy of the project's tracked files (with this venv), so the
paths they use are the repository's own and the checkout stays clean. The "Command line"
synopsis is checked option by option against the commands' parsers; cluster and Connect
recipes are for the tests that start a standalone cluster or a Connect server on 127.0.0.1.

Heavy (a subprocess per command): ``make test-readme`` runs it, and .ci/run calls that.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import subprocess

import pytest

from conftest import ROOT

pytestmark = pytest.mark.readme

README = (ROOT / "README.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"```sh\n(.*?)```", README, re.S)


def commands(block: str) -> list[str]:
    """The block's commands, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", block)
    lines = [line.split("  #")[0].strip() for line in joined.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def is_synopsis(command: str) -> bool:
    return re.search(r"\[(--|spark-submit|\.\.\.)|\b(PATH|N|M|OUTPUT|HOST|PORT)\b|\.\.\.", command) is not None


def is_local(command: str) -> bool:
    return not re.search(r"--master|--remote|SPARK_REMOTE|--deploy-mode|venv-pack|pip install", command)


# make test is what runs this; make packed-env takes minutes and is CI's own step.
HEAVY = ("make test", "make packed-env")
RUNNABLE = [c for b in BLOCKS for c in commands(b) if not is_synopsis(c) and is_local(c) and c not in HEAVY]


def test_the_readme_shows_runnable_commands():
    assert RUNNABLE[0] == "make run"
    assert any(c.startswith("./spark-submit.sh jobs/score.py") for c in RUNNABLE)
    assert any("--input-kind transactions" in c for c in RUNNABLE)
    assert sum("Mall_Customers.csv" in c for c in RUNNABLE) == 2


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A copy of the tracked files, with this venv, as a user's clone would have them."""
    copy = tmp_path_factory.mktemp("readme") / "project"
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for name in tracked:
        target = copy / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    if not (ROOT / ".venv" / ".installed").exists():
        pytest.fail("the venv is not installed: run make venv")
    os.symlink(ROOT / ".venv", copy / ".venv")
    git = ["git", "-c", "user.name=readme", "-c", "user.email=readme@localhost"]
    for step in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "the tracked files"]):
        subprocess.run([*git, *step], cwd=copy, check=True, capture_output=True)
    return copy


@pytest.mark.parametrize("command", RUNNABLE)
def test_every_local_command_of_the_readme_runs_as_written(project, command):
    env = dict(os.environ, PATH=f"{project / '.venv' / 'bin'}:{os.environ['PATH']}", SPARK_MASTER="local[2]",
               SPARK_DRIVER_MEMORY="2g")
    for key in ("PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON", "SPARK_HOME"):
        env.pop(key, None)
    if command.startswith("make run"):
        # The same two jobs at a test's size; -o: the shared venv is installed, never reinstalled from the copy.
        command += " DEMO_ROWS=20000 -o .venv/.installed"
    result = subprocess.run(["bash", "-c", command], cwd=project, env=env, capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, f"{command}\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    assert "Traceback" not in result.stderr
    if "jobs/segment.py" in command or command.startswith("make run"):
        output = re.search(r"--output (\S+)", command.split("jobs/segment.py")[-1])
        manifest = json.load(open(project / (output.group(1) if output else "output") / "manifest.json"))
        if '--features "Annual Income (k$),Spending Score (1-100)"' in command:  # the README says K = 5
            assert manifest["chosen_k"] == 5, manifest["k_selection"]["summary"]
    status = subprocess.run(["git", "status", "--porcelain"], cwd=project, capture_output=True, text=True).stdout
    assert status == "", f"{command} left files git does not ignore:\n{status}"


def test_the_command_line_synopsis_names_only_real_options():
    from segmentation.commands import generate, score, segment

    block = README.split("## Command line", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    for command in commands(block):
        job = re.search(r"jobs/(\w+)\.py", command)
        if not job:
            continue
        module = {"segment": segment, "score": score, "generate": generate}[job.group(1)]
        help_text = io.StringIO()
        with contextlib.redirect_stdout(help_text), pytest.raises(SystemExit):
            module.parse_args(["--help"])
        for option in re.findall(r"(--[a-z][a-z-]*)", command.split(job.group(0), 1)[1]):
            assert option in help_text.getvalue(), f"{option} of the README's synopsis is not an option of {job.group(0)}"



CLUSTER = [c for b in BLOCKS for c in commands(b) if c.startswith("./spark-submit.sh") and not is_local(c)
           and "..." not in c]


def test_the_readme_shows_cluster_and_connect_recipes():
    assert any("--deploy-mode cluster" in c for c in CLUSTER) and any("spark://" in c for c in CLUSTER)


@pytest.mark.parametrize("command", CLUSTER)
def test_every_cluster_recipe_of_the_readme_gives_a_command(project, command):
    # Nothing runs on a cluster here: --print-command shows what would be submitted.
    (project / "build").mkdir(exist_ok=True)
    (project / "build" / "env.tar.gz").write_bytes(b"")  # what make packed-env would have made
    printed = command.replace("./spark-submit.sh", "./spark-submit.sh --print-command", 1)
    env = dict(os.environ, PYSPARK_DRIVER_PYTHON=str(project / ".venv" / "bin" / "python"))
    env.pop("SPARK_MASTER", None)
    result = subprocess.run(["bash", "-c", printed], cwd=project, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0 and result.stdout.strip(), f"{command}\n{result.stderr}"
    assert "jobs/segment.py" in result.stdout

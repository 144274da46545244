"""The benchmark: the job against scikit-learn, DuckDB, an empty Spark job and the tutorial
spark.ml loop, on one machine.

    make bench ROWS=1000000 [REPEATS=3] [SYSTEMS=job,sklearn,duckdb,empty,tutorial]
    python benchmarks/run.py --rows N [--repeats R] [--systems ...] [--markdown BENCHMARKS.md]

Generates N synthetic customers once with jobs/generate.py (kept under
benchmarks/data/), then runs every system REPEATS times, alternating their order,
each as its own process tree. For each run it records the wall seconds and the
peak resident memory of the whole tree (spark-submit, the driver's Python, the
JVM, any Python workers), sampled every 0.1 s as the sum of each process's
proportional set size (PSS), so pages shared after a fork are counted once. Quality is compared with
scikit-learn's best of 10 initialisations per K on the same rows (computed once
per data set, not timed). The section for N rows in BENCHMARKS.md is replaced;
the raw numbers go to benchmarks/results/N.json. The job's dashboard page is measured after
each of its runs: its size, and its load time in headless Chromium (benchmarks/dashboard_page.py).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import dashboard_page  # noqa: E402  (benchmarks/, the script's own folder)
from segmentation.k_selection import select_k  # noqa: E402

SYSTEMS = ("job", "sklearn", "duckdb", "empty", "tutorial")
TITLES = {
    "job": "the job (`jobs/segment.py`)",
    "sklearn": "scikit-learn, one machine",
    "duckdb": "DuckDB + scikit-learn on a sample",
    "empty": "empty Spark job",
    "tutorial": "tutorial spark.ml loop",
}
# The scripts each system runs: through ./spark-submit.sh (Spark) or this Python.
SUBMITTED = {"tutorial": "benchmarks/tutorial_loop.py", "empty": "benchmarks/empty_job.py"}
PYTHON_SCRIPTS = {"sklearn": "benchmarks/sklearn_baseline.py", "duckdb": "benchmarks/duckdb_baseline.py"}
QUALITY_RUNS = 10
QUALITY_TOLERANCE = 0.02


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--work", default=str(ROOT / "benchmarks" / "data"))
    parser.add_argument("--markdown", default=str(ROOT / "BENCHMARKS.md"))
    parser.add_argument("--job-args", default="", help="extra arguments for jobs/segment.py")
    parser.add_argument("--no-quality", action="store_true", help="skip scikit-learn's best of 10")
    args = parser.parse_args()
    systems = [s for s in args.systems.split(",") if s]
    unknown = set(systems) - set(SYSTEMS)
    if unknown:
        print(f"error: unknown systems {sorted(unknown)}; choose from {', '.join(SYSTEMS)}", file=sys.stderr)
        return 2

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    data = generate(args.rows, work)
    runs: dict[str, list[dict]] = {s: [] for s in systems}
    for repeat in range(args.repeats):
        order = systems[repeat % len(systems):] + systems[: repeat % len(systems)]
        for system in order:
            result = run_system(system, data, work, args.job_args.split())
            runs[system].append(result)
            print(f"{system} run {repeat + 1}: {result['seconds']:.1f} s, "
                  f"peak {result['peak_rss_bytes'] / 2**30:.2f} GiB, k={result.get('chosen_k')}",
                  flush=True)

    quality = None
    if not args.no_quality and args.rows <= 20_000_000:
        quality = best_of_n(data, work, args.rows)
    report = {"rows": args.rows, "machine": machine(), "runs": runs, "quality_reference": quality,
              "job_args": args.job_args, "commit": commit()}
    results = ROOT / "benchmarks" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / f"{args.rows}.json").write_text(json.dumps(report, indent=1))
    write_markdown(Path(args.markdown), report)
    print(f"wrote {args.markdown} and {results / f'{args.rows}.json'}")
    return 0


def generate(rows: int, work: Path) -> Path:
    """The data set for ``rows``, generated on the executors once and then reused."""
    data = work / f"customers-{rows}"
    if (data / "_SUCCESS").exists():
        return data
    started = time.monotonic()
    subprocess.run(
        [str(ROOT / "spark-submit.sh"), "jobs/generate.py", "--rows", str(rows),
         "--output", str(data), "--overwrite"],
        cwd=ROOT, check=True,
    )
    print(f"generated {rows} rows in {time.monotonic() - started:.0f} s", flush=True)
    return data


def job_command(data: Path, out: Path, job_args: list[str] = (), submit_args: list[str] = ()) -> list[str]:
    """``./spark-submit.sh [submit_args] jobs/segment.py --input DATA --output OUT [job_args]``."""
    return [str(ROOT / "spark-submit.sh"), *submit_args, "jobs/segment.py", "--input", str(data),
            "--output", str(out), *job_args]


def empty_job() -> list[str]:
    """The yardstick: a session that starts, counts one row and stops (it takes no paths)."""
    return [str(ROOT / "spark-submit.sh"), SUBMITTED["empty"]]


def command(system: str, data: Path, out: Path, result: Path, job_args: list[str],
            submit_args: list[str] = ()) -> list[str]:
    if system == "job":
        return job_command(data, out, job_args, submit_args)
    if system == "empty":
        return empty_job()
    if system in SUBMITTED:
        return [str(ROOT / "spark-submit.sh"), SUBMITTED[system], str(data), str(out), str(result)]
    return [sys.executable, PYTHON_SCRIPTS[system], str(data), str(out), str(result)]


def measured_run(argv: list[str], log: Path, name: str = "the job") -> tuple[float, "PeakMemory"]:
    """Runs ``argv`` in ROOT as its own process tree, output to ``log``: its wall seconds and peak
    memory; a failure ends the bench with an error line naming the log."""
    with open(log, "w") as handle:
        started = time.monotonic()
        process = subprocess.Popen(argv, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
        peak = PeakMemory(process.pid)
        code = process.wait()
        seconds = time.monotonic() - started
        peak.stop()
    if code != 0:
        raise SystemExit(f"error: {name} failed with exit code {code}; see {log}")
    return seconds, peak


def run_system(system: str, data: Path, work: Path, job_args: list[str], submit_args: list[str] = ()) -> dict:
    out = work / f"out-{system}"
    result_file = work / f"result-{system}.json"
    # A clean slate for every system: each job run is a first run (#18), with no previous run
    # beside it to match segments with and join for migrations.
    shutil.rmtree(out, ignore_errors=True)
    result_file.unlink(missing_ok=True)
    seconds, peak = measured_run(command(system, data, out, result_file, job_args, submit_args),
                                 work / f"{system}.log", system)
    run = {"seconds": round(seconds, 2), "peak_rss_bytes": peak.peak, "at_peak": peak.at_peak}
    if system == "job":
        manifest = json.loads((out / "manifest.json").read_text())
        run.update(chosen_k=manifest["chosen_k"], k=[p["k"] for p in manifest["elbow"]],
                   wssse=[p["wssse"] for p in manifest["elbow"]],
                   fit_rows=[p["rows"] for p in manifest["elbow"]],
                   timings=manifest["timings"], fit_quality=manifest.get("fit_quality"),
                   dashboard=dashboard_page.measure(out))
    elif system != "empty":
        inner = json.loads(result_file.read_text())
        run.update(chosen_k=inner["chosen_k"], k=inner["k"], wssse=inner["wssse"],
                   fit_rows=[inner.get("fit_rows", inner["rows"])] * len(inner["k"]))
        if "seconds_elbow" in inner:
            run["seconds_elbow"] = inner["seconds_elbow"]
    return run


def _resident(process: psutil.Process) -> int:
    """Proportional resident memory (PSS): shared pages split between the processes sharing them.

    Plain RSS would count a JVM twice for the moment it forks a helper (Hadoop's local file
    system runs chmod that way), since the child shares all the parent's pages."""
    try:
        return process.memory_full_info().pss
    except (AttributeError, psutil.AccessDenied):
        return process.memory_info().rss


class PeakMemory:
    """Samples the memory of a process and all its descendants; keeps the peak of the sum."""

    def __init__(self, pid: int, interval: float = 0.1):
        self.peak = 0
        self.at_peak: list[tuple[str, int]] = []  # (process name, resident bytes) when it peaked
        self._done = threading.Event()
        self._root = psutil.Process(pid)
        self._thread = threading.Thread(target=self._sample, args=(interval,), daemon=True)
        self._thread.start()

    def _sample(self, interval: float) -> None:
        while not self._done.is_set():
            sizes = []
            try:
                tree = [self._root, *self._root.children(recursive=True)]
            except psutil.Error:
                tree = []
            for process in tree:
                try:
                    sizes.append((process.name(), _resident(process)))
                except psutil.Error:
                    pass
            total = sum(size for _, size in sizes)
            if total > self.peak:
                self.peak, self.at_peak = total, sorted(sizes, key=lambda s: -s[1])[:4]
            self._done.wait(interval)

    def stop(self) -> None:
        self._done.set()
        self._thread.join()


def best_of_n(data: Path, work: Path, rows: int) -> dict:
    """scikit-learn's best of 10 initialisations per K on the same rows: the quality reference."""
    cached = work / f"sklearn-best{QUALITY_RUNS}-{rows}.json"
    if not cached.exists():
        started = time.monotonic()
        subprocess.run([sys.executable, "benchmarks/sklearn_baseline.py", str(data), str(work / "unused"),
                        str(cached), "--runs", str(QUALITY_RUNS)], cwd=ROOT, check=True)
        print(f"quality reference in {time.monotonic() - started:.0f} s", flush=True)
    return json.loads(cached.read_text())


def commit() -> str:
    """The commit measured, marked when the working tree differs from it (the benchmarks' own
    outputs aside: a run of several sizes rewrites them between sizes)."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                          text=True).stdout.strip() or "unknown"
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                            ":(exclude)BENCHMARKS.md", ":(exclude)benchmarks/results"], cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()
    return head + (" (with uncommitted changes)" if dirty else "")


def machine() -> dict:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr.splitlines()
    versions = {}
    for package in ("pyspark", "scikit-learn", "pandas", "numpy", "pyarrow"):
        try:
            from importlib.metadata import version

            versions[package] = version(package)
        except Exception:  # noqa: BLE001
            versions[package] = "?"
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "java": java[0] if java else "?",
        "packages": versions,
    }


# ---- the markdown report ----------------------------------------------------------


def write_markdown(path: Path, report: dict) -> None:
    replace_section(path, f"## {report['rows']:,} rows\n", render_section(report), report["machine"])


def replace_section(path: Path, heading: str, section: str, machine_facts: dict) -> None:
    """Replaces (or appends) the section of BENCHMARKS.md that starts with ``heading``, and the machine's."""
    text = path.read_text() if path.exists() else HEADER
    pattern = re.compile(rf"^{re.escape(heading)}.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    text = re.sub(r"^## Machine\n.*?(?=^## |\Z)", lambda _: render_machine(machine_facts), text,
                  flags=re.S | re.M)
    path.write_text(_sorted_sections(text))


HEADER = """# Benchmarks

Produced by `make bench ROWS=N` (benchmarks/run.py); each section is replaced when its
size is run again. Times are wall seconds of the whole command, start-up included; memory
is the peak, sampled every 0.1 s, of the summed proportional resident memory (PSS) of all of a
run's processes.

## Machine

"""


def _sorted_sections(text: str) -> str:
    head, *rest = re.split(r"(?=^## )", text, flags=re.M)
    machine_part = [s for s in rest if s.startswith("## Machine")]
    sized = [s for s in rest if not s.startswith("## Machine")]
    sized.sort(key=lambda s: int(re.match(r"## ([\d,]+)", s).group(1).replace(",", ""))
               if re.match(r"## [\d,]+ rows", s) else 1 << 62)
    return head + "".join(machine_part) + "".join(s.rstrip("\n") + "\n\n" for s in sized)


def render_machine(m: dict) -> str:
    packages = ", ".join(f"{k} {v}" for k, v in m["packages"].items())
    return (
        "## Machine\n\n"
        f"- {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB of memory, no GPU\n"
        f"- {m['os']}; Python {m['python']}; {m['java']}\n"
        f"- {packages}\n\n"
    )


def _machine_line(facts: dict) -> str:
    """The machine a section ran on, in its own heading line: sections are replaced one size at a
    time, so the Machine section names only the last bench's machine."""
    return f"{facts['cpu']} ({facts['os']})"


def render_section(report: dict) -> str:
    rows, runs = report["rows"], report["runs"]
    systems = [s for s in SYSTEMS if runs.get(s)]
    median = {s: statistics.median(r["seconds"] for r in runs[s]) for s in systems}
    peak = {s: max(r["peak_rss_bytes"] for r in runs[s]) for s in systems}
    lines = [f"## {rows:,} rows", ""]
    repeats = max(len(runs[s]) for s in systems)
    lines.append(f"{repeats} run{'s' if repeats != 1 else ''} of each"
                 f"{', alternating' if len(systems) > 1 else ''}, at commit {report.get('commit', 'unknown')}, "
                 f"on {_machine_line(report['machine'])}. Job arguments: `{report['job_args'] or '(defaults)'}`.")
    lines.append("")
    lines.append("| | " + " | ".join(TITLES[s] for s in systems) + " |")
    lines.append("|---|" + "---|" * len(systems))
    lines.append("| median wall s | " + " | ".join(f"{median[s]:.1f}" for s in systems) + " |")
    lines.append("| every run, s | " + " | ".join(
        ", ".join(f"{r['seconds']:.1f}" for r in runs[s]) for s in systems) + " |")
    if "job" in systems:
        lines.append("| wall time ÷ the job's | " + " | ".join(
            f"{median[s] / median['job']:.2f}×" for s in systems) + " |")
    lines.append("| peak resident memory, GiB | " + " | ".join(f"{peak[s] / 2**30:.2f}" for s in systems) + " |")
    lines.append("| chosen K | " + " | ".join(
        "/".join(sorted({str(r.get("chosen_k", "–")) for r in runs[s]})) for s in systems) + " |")
    lines.append("| rows per fit | " + " | ".join(
        f"{runs[s][-1]['fit_rows'][0]:,}" if "fit_rows" in runs[s][-1] else "–" for s in systems) + " |")
    lines.append("")

    quality = report.get("quality_reference")
    systems = [s for s in systems if "wssse" in runs[s][-1]]  # the empty job has no curve
    ks = runs[systems[0]][-1]["k"]
    head = ["K"] + [f"{TITLES[s]}" for s in systems]
    if quality:
        head.append(f"scikit-learn best of {quality['runs']}")
    lines.append("WSSSE per row (the last run of each; lower is better):")
    lines.append("")
    lines.append("| " + " | ".join(head) + (" | the job ÷ best |" if quality and "job" in systems else " |"))
    lines.append("|---" * (len(head) + (1 if quality and "job" in systems else 0)) + "|")
    for i, k in enumerate(ks):
        cells = [str(k)]
        per_row = {s: runs[s][-1]["wssse"][i] / runs[s][-1]["fit_rows"][i] for s in systems}
        cells += [f"{per_row[s]:.4f}" for s in systems]
        if quality:
            best = quality["wssse"][i] / quality["rows"]
            cells.append(f"{best:.4f}")
            if "job" in systems:
                cells.append(f"{per_row['job'] / best:.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines += render_checks(report, median, peak)
    if "job" in systems:
        timings = runs["job"][-1]["timings"]
        lines.append("")
        lines.append("The job's stages (seconds, last run): " + ", ".join(
            f"{name} {sec:.1f}" for name, sec in timings.items()) + ".")
    lines.append("")
    return "\n".join(lines) + "\n"


def render_checks(report: dict, median: dict, peak: dict) -> list[str]:
    rows, runs, quality = report["rows"], report["runs"], report.get("quality_reference")
    checks = []
    if "job" not in runs or not runs["job"]:
        return checks
    job = runs["job"][-1]
    if "sklearn" in median:
        ratio = median["job"] / median["sklearn"]
        checks.append(f"- The job's wall time ÷ scikit-learn's: {ratio:.2f}×"
                      + (" (target at 10M rows: at most 1.0×)" if rows >= 10_000_000 else ""))
    if "empty" in median:
        checks.append(f"- The job's wall time ÷ the empty Spark job's: {median['job'] / median['empty']:.2f}×"
                      + (" (target at 1M rows: at most 2.0×)" if rows == 1_000_000 else ""))
        if "duckdb" in median:
            beyond = (median["job"] - median["empty"]) / median["duckdb"]
            elbow = statistics.median(r["seconds_elbow"] for r in runs["duckdb"])
            passes = median["duckdb"] - elbow
            checks.append(f"- The job's time beyond the empty job ÷ DuckDB's: {beyond:.1f}× (aim: 3×). DuckDB's "
                          f"elbow (scikit-learn on its sample) took {elbow:.1f} s of its {median['duckdb']:.1f} s; "
                          f"against its passes over the rows alone ({passes:.1f} s), the job's time beyond the "
                          f"empty job is {(median['job'] - median['empty']) / passes:.1f}×")
    if "tutorial" in median:
        speedup = median["tutorial"] / median["job"]
        checks.append(f"- The job is {speedup:.1f}× faster than the tutorial loop"
                      + (" (target at 1M rows: at least 10×)" if rows == 1_000_000 else ""))
    per_row = [w / n for w, n in zip(job["wssse"], job["fit_rows"])]
    monotone = all(b < a for a, b in zip(per_row, per_row[1:]))
    checks.append(f"- The job's curve falls at every K: {'yes' if monotone else 'no'}")
    if quality:
        best = [w / quality["rows"] for w in quality["wssse"]]
        worst = max(j / b for j, b in zip(per_row, best))
        checks.append(f"- The job's WSSSE per row, worst K against scikit-learn's best of {quality['runs']}: "
                      f"{(worst - 1) * 100:+.2f}% (target: within {QUALITY_TOLERANCE:.0%})")
        reference_k = select_k(quality["k"], quality["wssse"], rule="elbow").chosen_k
        checks.append(f"- K by the two-line elbow on scikit-learn's best curve: {reference_k}; "
                      f"the job chose {job['chosen_k']}")
    chosen = {s: runs[s][-1]["chosen_k"] for s in ("sklearn", "duckdb") if runs.get(s)}
    if chosen:
        checks.append("- K chosen by the job's rule (silhouettes and elbow): the job " + str(job["chosen_k"]) + ", "
                      + ", ".join(f"{TITLES[s]} {k}" for s, k in chosen.items()))
    if job.get("fit_quality"):
        fq = job["fit_quality"]
        checks.append(f"- The sample's WSSSE per row at the chosen K against all rows': "
                      f"{fq['sample_wssse_per_row']:.4f} vs {fq['all_rows_wssse_per_row']:.4f} "
                      f"({fq['relative_error'] * 100:+.2f}%)")
    checks.append(f"- The job's peak resident memory: {peak['job'] / 2**30:.2f} GiB")
    if job.get("dashboard"):
        checks.append(f"- The dashboard (`report/dashboard.html`, last run): {dashboard_page.describe(job['dashboard'])}; "
                      f"the dashboard stage took {job['timings'].get('dashboard', float('nan')):.1f} s")
    return checks


if __name__ == "__main__":
    sys.exit(main())

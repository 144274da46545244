#!/usr/bin/env bash
# ./spark-submit.sh [spark-submit options] [--packed-env ENV.tar.gz] [--print-command] JOB.py [job options]
# ./spark-submit.sh --remote sc://host:15002 JOB.py [job options]     (Spark Connect)
#
# Wraps spark-submit ($SPARK_HOME/bin/spark-submit, or the one inside the installed
# pyspark when SPARK_HOME is unset): ships the segmentation package with --py-files
# and the configs and the logging config with --files (referred to by file name, so a
# driver in the cluster finds them in its working directory), and defaults to
# --master local[*] (SPARK_MASTER or --master override it). Every other spark-submit
# option is passed through.
#
# --packed-env ENV.tar.gz: a packed Python environment (venv-pack or conda-pack) with the
# project installed, shipped with --archives as ./environment; the executors (and, in
# cluster deploy mode, the driver) run its Python. It is never run on this machine.
# --print-command: print the command that would run, on stdout, and run nothing.
#
# In client mode (the default) the job's Python process is started first and
# launches spark-submit for its JVM through PYSPARK_SUBMIT_ARGS, exactly as
# spark-submit would configure it. Why: spark-submit's own Python runner merges
# the driver's stderr into stdout, so errors and progress lines would not reach
# stderr. With --deploy-mode cluster, spark-submit runs as it is.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
fail() { echo "error: $*" >&2; exit 2; }

# The Python that runs the driver here (and, in local mode, the workers): the project's
# venv when present. A PYSPARK_PYTHON that is a path inside a packed environment
# (./environment/...) names the cluster's Python, not one to run here.
local_python=""
for candidate in "${PYSPARK_DRIVER_PYTHON:-}" "${PYSPARK_PYTHON:-}" "$ROOT/.venv/bin/python" "$(command -v python3 || true)"; do
  if [ -n "$candidate" ] && [[ "$candidate" != ./* ]] && [ -x "$candidate" ]; then local_python="$candidate"; break; fi
done
[ -n "$local_python" ] || fail "no Python found here: run 'make venv' or set PYSPARK_DRIVER_PYTHON"

if [ -n "${SPARK_HOME:-}" ]; then
  SUBMIT="$SPARK_HOME/bin/spark-submit"
else
  SUBMIT="$("$local_python" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')/bin/spark-submit"
fi
[ -x "$SUBMIT" ] || fail "spark-submit not found at $SUBMIT: set SPARK_HOME or run 'make venv'"

# Split the arguments: spark-submit options, then the job script, then its options.
master="${SPARK_MASTER:-local[*]}"
spark_opts=()
job=""
java_opts_given=false
deploy_mode=client
remote="${SPARK_REMOTE:-}"
packed_env=""
print_command=false
while [ $# -gt 0 ]; do
  case "$1" in
    --remote) remote="$2"; shift 2 ;;
    --remote=*) remote="${1#--remote=}"; shift ;;
    --master) master="$2"; shift 2 ;;
    --master=*) master="${1#--master=}"; shift ;;
    --deploy-mode) deploy_mode="$2"; shift 2 ;;
    --deploy-mode=*) deploy_mode="${1#--deploy-mode=}"; shift ;;
    --packed-env) packed_env="$2"; shift 2 ;;
    --packed-env=*) packed_env="${1#--packed-env=}"; shift ;;
    --print-command) print_command=true; shift ;;
    --verbose|-v|--supervise|--help|-h|--version) spark_opts+=("$1"); shift ;;
    --driver-java-options|--driver-java-options=*) java_opts_given=true; spark_opts+=("$1"); [ "$1" = "--driver-java-options" ] && { spark_opts+=("$2"); shift; }; shift ;;
    --conf) [[ "$2" == spark.driver.extraJavaOptions=* ]] && java_opts_given=true; spark_opts+=("$1" "$2"); shift 2 ;;
    -*=*) spark_opts+=("$1"); shift ;;
    -*) spark_opts+=("$1" "${2:-}"); shift 2 ;;
    *) job="$1"; shift; break ;;
  esac
done
[ -n "$job" ] || fail "no job given: ./spark-submit.sh [spark-submit options] jobs/segment.py [job options]"
case "$deploy_mode" in client|cluster) ;; *) fail "unknown deploy mode '$deploy_mode': use client or cluster" ;; esac
case "$master" in
  local|local\[*\]|yarn|spark://*|k8s://*) ;;
  *) fail "unknown master '$master': use local[N], yarn, spark://HOST:PORT or k8s://https://HOST:PORT" ;;
esac
if [ "$deploy_mode" = cluster ]; then
  [[ "$master" == local* ]] && fail "--deploy-mode cluster needs a cluster master (yarn or k8s://...), not $master"
  [[ "$master" == spark://* ]] && fail "Spark has no cluster deploy mode for Python on a standalone master: use client"
  [ -n "$packed_env" ] || fail "--deploy-mode cluster needs --packed-env ENV.tar.gz: the driver runs in the cluster"
fi
if [ -n "$packed_env" ]; then
  [ -f "${packed_env%%#*}" ] || fail "packed environment not found: ${packed_env%%#*} (build it with: make packed-env)"
  [[ "$master" == local* ]] && fail "--packed-env is for a cluster master; local mode runs this machine's Python"
fi

# Package the library fresh for every submission (a few KB), atomically: the package beside this
# script, $ROOT first on the path (`python -m` would put the current directory first, and zip any
# other `segmentation` folder found there).
mkdir -p "$ROOT/build"
zip_path="$ROOT/build/segmentation.zip"
"$local_python" -c 'import sys; sys.path.insert(0, sys.argv[1]); from segmentation.package import write_zip; write_zip(sys.argv[2])' \
  "$ROOT" "$zip_path"

# Harmless lines that the JVM and two of Spark's libraries print straight to stderr, not
# through log4j (so the logging config cannot silence them); anything else goes through.
quiet() {
  grep -v --line-buffered -x -e 'WARNING: Using incubator modules: jdk.incubator.vector' \
    -e 'Warning: Java versions > Java 11 can only operate in restricted mode where no off-heap operations are allowed!' \
    -e 'netlib-[a-z]*: JNI_OnLoad: dlopen(lib[a-z]*\.so\.3) failed: .*' >&2 || true
}

# Spark Connect (--remote sc://host:port, or SPARK_REMOTE): the job is a plain Python
# client of the server, with no JVM here; spark-submit options do not apply.
if [ -n "$remote" ]; then
  if [ "$print_command" = true ]; then
    printf 'SPARK_REMOTE=%q PYTHONPATH=%q %q %q' "$remote" "$zip_path" "$local_python" "$job"; [ $# -eq 0 ] || printf ' %q' "$@"; echo
    exit 0
  fi
  export SPARK_REMOTE="$remote"
  export PYTHONPATH="$zip_path${PYTHONPATH:+:$PYTHONPATH}"
  exec "$local_python" "$job" "$@"
fi

files=$(ls "$ROOT"/conf/*.yaml | tr '\n' ',')
files="${files}$ROOT/conf/log4j2.properties"
extra=()
# Spark's console progress bar only where a person watches (a later --conf wins).
if [ -t 2 ]; then progress=true; else progress=false; fi
extra+=(--conf "spark.ui.showConsoleProgress=$progress")
if [[ "$master" == local* ]]; then
  # In local mode the driver's JVM is here and reads the file where it is.
  java_opts="-Dlog4j2.configurationFile=file:$ROOT/conf/log4j2.properties"
  # Local mode runs the executors inside the driver's JVM: give it room, and the throughput
  # collector, ParallelGC (the 10M-row job here: faster than the default G1 in 5 alternating
  # pairs out of 5, median 62.0 s against 64.5 s).
  export SPARK_DRIVER_MEMORY="${SPARK_DRIVER_MEMORY:-4g}"
  java_opts+=" -XX:+UseParallelGC"
  # Everything runs on this machine: bind to loopback (no "resolves to a loopback address" warning).
  export SPARK_LOCAL_IP="${SPARK_LOCAL_IP:-127.0.0.1}"
  # Without a native BLAS here, netlib falls back to Java anyway: skip the attempt.
  if ! { ldconfig -p 2>/dev/null || true; } | grep -q 'libblas\.so\.3'; then
    java_opts+=" -Ddev.ludovic.netlib.blas.allowNative=false -Ddev.ludovic.netlib.lapack.allowNative=false"
    java_opts+=" -Ddev.ludovic.netlib.arpack.allowNative=false"
  fi
  [[ "${PYSPARK_PYTHON:-}" == ./* ]] && unset PYSPARK_PYTHON
else
  # A driver elsewhere finds the logging config by name, where --files put it.
  java_opts="-Dlog4j2.configurationFile=log4j2.properties"
  extra+=(--conf "spark.executor.extraJavaOptions=-Dlog4j2.configurationFile=log4j2.properties")
fi
# Java's class-data sharing archive of the classes a local run loads (make jvm-classes): a driver
# started here maps them instead of loading them from the jars, 2 s less start-up. One that does
# not fit this Java or these jars is ignored, silently (the JVM would say so on stdout).
classes_archive="$ROOT/build/jvm-classes.jsa"
if [ "$deploy_mode" = client ] && [ -f "$classes_archive" ]; then
  java_opts+=" -XX:SharedArchiveFile=$classes_archive -Xlog:cds=off -Xlog:cds+dynamic=off"
fi
if [ -n "$packed_env" ]; then
  archive="${packed_env%%#*}"
  extra+=(--archives "$archive#environment" --conf "spark.pyspark.python=./environment/bin/python")
  if [ "$deploy_mode" = cluster ]; then
    extra+=(--conf "spark.pyspark.driver.python=./environment/bin/python")
    [ "$master" = yarn ] && extra+=(--conf "spark.yarn.appMasterEnv.PYSPARK_PYTHON=./environment/bin/python")
  else
    extra+=(--conf "spark.pyspark.driver.python=$local_python")
    # A driver started from Python tells the executors which Python to run by its own
    # PYSPARK_PYTHON (pyspark's SparkContext.pythonExec), not by spark.pyspark.python.
    export PYSPARK_PYTHON=./environment/bin/python
  fi
fi
# The workers' Python: the packed environment's (above), the one given, or this machine's.
export PYSPARK_PYTHON="${PYSPARK_PYTHON:-$local_python}"
# Driver Java options given on the command line replace these.
if [ "$java_opts_given" = false ]; then
  extra+=(--driver-java-options "$java_opts")
fi

submit_args=(--master "$master" --deploy-mode "$deploy_mode" --py-files "$zip_path" --files "$files"
  ${extra[@]+"${extra[@]}"} ${spark_opts[@]+"${spark_opts[@]}"})

if [ "$deploy_mode" = cluster ]; then
  if [ "$print_command" = true ]; then
    printf '%q' "$SUBMIT"; printf ' %q' "${submit_args[@]}" "$job" "$@"; echo
    exit 0
  fi
  exec "$SUBMIT" "${submit_args[@]}" "$job" "$@"
fi

# Client mode: Python first; pyspark runs "$SUBMIT ... pyspark-shell" for the JVM.
quoted=""
for arg in "${submit_args[@]}"; do
  quoted+="'${arg//\'/\'\\\'\'}' "
done
if [ "$print_command" = true ]; then
  # What runs: this Python, whose pyspark starts "$SPARK_HOME/bin/spark-submit $PYSPARK_SUBMIT_ARGS".
  if [[ "$quoted" == *[\$\`\\\"]* ]]; then printf 'PYSPARK_SUBMIT_ARGS=%q' "${quoted}pyspark-shell"
  else printf 'PYSPARK_SUBMIT_ARGS="%s"' "${quoted}pyspark-shell"; fi
  printf ' SPARK_HOME=%q PYSPARK_PYTHON=%q %q %q' "${SPARK_HOME:-$(dirname "$(dirname "$SUBMIT")")}" \
    "$PYSPARK_PYTHON" "$local_python" "$job"
  [ $# -eq 0 ] || printf ' %q' "$@"; echo
  exit 0
fi
export PYSPARK_SUBMIT_ARGS="${quoted}pyspark-shell"
export SPARK_HOME="${SPARK_HOME:-$(dirname "$(dirname "$SUBMIT")")}"
export PYTHONPATH="$zip_path${PYTHONPATH:+:$PYTHONPATH}"
export PYSPARK_DRIVER_PYTHON="$local_python"
exec "$local_python" "$job" "$@" 2> >(quiet)

# The two commands a new user needs: `make run` and `make test`.
# Each creates .venv if absent and installs the project into it.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DEMO_ROWS ?= 200000
DEMO_DATA ?= data/demo_customers
OUTPUT ?= output
ROWS ?= 1000000
REPEATS ?= 3
SYSTEMS ?= job,sklearn,duckdb,empty,tutorial
TX_ROWS ?= 1000000
TX_CUSTOMERS ?= 100000
PREDICT_DAYS ?= 0
PREDICT_CUTOFFS ?=
WEEKLY_REPEATS ?= 2
K_SEEDS ?= 2026
K_ROWS ?= 20000
K_ARGS ?=

FUZZ_EXAMPLES ?= 1000
# The Spark lines that make test-compat checks beside the main environment's (conf/compat/).
COMPAT_LINES ?= 3.5 4.0

.PHONY: run test jvm-classes heavy-environments test-browser test-crash test-readme test-connect-remote test-compat test-packed-env fuzz packed-env dist bench bench-k bench-transactions bench-predictions bench-weekly levers venv clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Reinstall only when the project's dependency list changes.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

# Java's class-data sharing archive of the classes a local run loads: ./spark-submit.sh (client mode)
# and the tests' session map it instead of loading some 12,000 classes from the jars, which takes
# 2 s off each JVM's start here (README, "What it costs"). It is dumped at the exit of one real run
# on Mall (the JVM finishes writing it after Python has returned: hence the wait), and rebuilt when
# the installed dependencies change; a JVM whose Java or jars differ ignores it, silently.
JVM_CLASSES := build/jvm-classes.jsa
jvm-classes: $(JVM_CLASSES)

$(JVM_CLASSES): $(STAMP)
	rm -rf $@ $@.tmp build/jvm-classes-run && mkdir -p build
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" SPARK_SUBMIT_OPTS="-XX:ArchiveClassesAtExit=$(CURDIR)/$@.tmp" \
	  ./spark-submit.sh jobs/segment.py --input tests/data/Mall_Customers.csv --input-format csv \
	  --id-col CustomerID --features 'Annual Income (k$$),Spending Score (1-100)' --output build/jvm-classes-run \
	  >/dev/null 2>build/jvm-classes.log || { cat build/jvm-classes.log >&2; exit 1; }
	while pgrep -f '[A]rchiveClassesAtExit=$(CURDIR)/$@.tmp' >/dev/null; do sleep 0.2; done
	rm -rf build/jvm-classes-run build/.jvm-classes-run.lock build/jvm-classes.log
	mv $@.tmp $@

run: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" ./spark-submit.sh jobs/generate.py --rows $(DEMO_ROWS) --output $(DEMO_DATA) --overwrite
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" ./spark-submit.sh jobs/segment.py --input $(DEMO_DATA) --output $(OUTPUT)

test: $(STAMP) $(JVM_CLASSES)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m pytest

# What a platform deploys: the wheel (console scripts segment-customers, score-customers,
# generate-customers) and the zip for --py-files, in dist/.
dist: $(STAMP)
	rm -rf dist
	$(PY) -m pip wheel --quiet --no-deps -w dist .
	$(PY) -m segmentation.package dist/segmentation.zip

# A packed environment for clusters (spark-submit.sh --packed-env): the project installed, not
# editable, into a fresh venv, packed with venv-pack into build/env.tar.gz.
packed-env: build/env.tar.gz

build/env.tar.gz: pyproject.toml $(wildcard segmentation/*.py segmentation/commands/*.py)
	rm -rf build/packed build/env.tar.gz
	$(PYTHON) -m venv build/packed
	build/packed/bin/pip install --quiet . venv-pack
	build/packed/bin/venv-pack --quiet -p build/packed -o build/env.tar.gz

# Every local-mode command of the README, as written, in subprocesses (tests/test_readme.py).
test-readme: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m pytest -m readme tests/test_readme.py

# The dashboard in headless Chromium (Debian's chromium package; CHROMIUM=path for another), driven
# by Playwright with the network blocked (tests/test_browser.py). Playwright is the browser extra.
BROWSER_STAMP := $(VENV)/.browser-installed
$(BROWSER_STAMP): pyproject.toml | $(STAMP)
	$(PY) -m pip install --quiet -e '.[test,browser]'
	touch $@

test-browser: $(BROWSER_STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m pytest -m browser tests/test_browser.py

# Real runs killed at points of their publish (Parquet swap and Delta commits), in subprocesses.
test-crash: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m pytest -m crash tests/test_cli.py tests/test_delta_crash.py

# A Spark Connect server on 127.0.0.1 whose workers' Python lacks the project (tests/test_connect_remote.py).
test-connect-remote: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m pytest -m remote tests/test_connect_remote.py

# One environment per older Spark line: that line's pyspark with the numpy, pandas and pyarrow
# that go with it (conf/compat/spark-LINE.txt), the project installed into it.
.compat/%/.installed: conf/compat/spark-%.txt pyproject.toml
	rm -rf .compat/$*
	$(PYTHON) -m venv .compat/$*
	.compat/$*/bin/pip install --quiet --upgrade pip
	.compat/$*/bin/pip install --quiet -c conf/compat/spark-$*.txt -e '.[test]'
	touch $@

# The job on Mall and on transactions, scoring and the notebook under each line of COMPAT_LINES,
# against the same runs on the main environment's Spark (tests/test_compat.py).
test-compat: $(STAMP) $(foreach line,$(COMPAT_LINES),.compat/$(line)/.installed)
	COMPAT_PYTHONS="$(foreach line,$(COMPAT_LINES),$(CURDIR)/.compat/$(line)/bin/python)" \
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m pytest -m compat tests/test_compat.py

# The heavy suites' own environments, built without running anything (.ci/run builds them while
# make test runs: they are mostly downloads).
heavy-environments: $(foreach line,$(COMPAT_LINES),.compat/$(line)/.installed) build/env.tar.gz

# The packed environment running a standalone cluster's executors on 127.0.0.1, client mode
# (tests/test_packed_env.py).
test-packed-env: $(STAMP) build/env.tar.gz
	PACKED_ENV="$(CURDIR)/build/env.tar.gz" PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m pytest -m packed tests/test_packed_env.py

# The fuzzing battery of tests/test_fuzz.py with FUZZ_EXAMPLES examples per test (make test runs a few).
fuzz: $(STAMP)
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m pytest tests/test_fuzz.py

# The benchmarks' own dependencies (DuckDB, a baseline; Playwright, to load the dashboard in
# Debian's chromium), beside the test extra.
BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): pyproject.toml | $(STAMP)
	$(PY) -m pip install --quiet -e '.[test,bench,browser]'
	touch $@

# The job against scikit-learn, DuckDB, an empty Spark job and the tutorial spark.ml loop on ROWS
# synthetic customers; replaces that size's section of BENCHMARKS.md (see benchmarks/run.py).
bench: $(BENCH_STAMP) $(JVM_CLASSES)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) benchmarks/run.py --rows $(ROWS) --repeats $(REPEATS) --systems $(SYSTEMS)

# The RFM path: the job on TX_ROWS synthetic transactions of TX_CUSTOMERS customers
# (see benchmarks/transactions.py); replaces that section of BENCHMARKS.md.
bench-transactions: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) benchmarks/transactions.py --rows $(TX_ROWS) --customers $(TX_CUSTOMERS) --repeats $(REPEATS) --predict-days $(PREDICT_DAYS)

# lifetimes, the reference BG/NBD, in its own environment: it predates numpy 2 (conf/bench/lifetimes.txt).
.bench-lifetimes/.installed: conf/bench/lifetimes.txt
	rm -rf .bench-lifetimes
	$(PYTHON) -m venv .bench-lifetimes
	.bench-lifetimes/bin/pip install --quiet -r conf/bench/lifetimes.txt
	touch $@

# Predictions on a real purchase log (CDNOW, from the lifetimes package) at PREDICT_CUTOFFS (default: monthly),
# against lifetimes on the same rows (see benchmarks/predictions.py).
bench-predictions: $(BENCH_STAMP) .bench-lifetimes/.installed
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) benchmarks/predictions.py $(if $(PREDICT_CUTOFFS),--cutoffs $(PREDICT_CUTOFFS))

# A week's second run on ROWS customers, carrying the lineage against a new lineage
# (see benchmarks/weekly.py); replaces the "Weekly runs" section of BENCHMARKS.md.
bench-weekly: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) benchmarks/weekly.py --rows $(ROWS) --repeats $(WEEKLY_REPEATS)

# Every K rule on the suite of tables with planted groups (see benchmarks/k_suite.py);
# replaces the "K selection" section of BENCHMARKS.md.
bench-k: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) benchmarks/k_suite.py --seeds $(K_SEEDS) --rows $(K_ROWS) $(K_ARGS)

# The job's settings, one changed at a time, on ROWS customers (see benchmarks/levers.py).
levers: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) benchmarks/levers.py --rows $(ROWS)

clean:
	rm -rf $(VENV) $(OUTPUT) data spark-warehouse .pytest_cache build dist

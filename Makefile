# offline-eval: two commands matter. `make demo` and `make test`. See README.md.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV   ?= .venv
BENCH_ROWS ?= 1000000,10000000
BENCH_ARGS ?=
START  ?= 2026-06-08
END    ?= 2026-06-21
DAYS   ?= 14
IMPRESSIONS_PER_DAY ?= 300000
REPROCESS ?= completed
FORCE  ?= 0
MLFLOW_PORT ?= 5000
EVIDENTLY_PORT ?= 8001
PYTEST_ARGS ?=
SEEDS  ?= 40

STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
ENV := source scripts/env.sh &&

.PHONY: help prereqs install demo test lint test-fast test-cluster bench bench-pipeline ab-coverage backfill mlflow-ui \
	evidently-ui airflow-up airflow-down engine-up engine-down cluster-up cluster-env cluster-down summary clean

help:
	@echo "make demo        set up, generate $(DAYS) days, backfill them through Airflow, print the summary"
	@echo "make test        install test dependencies, run make lint and the test suite"
	@echo "make lint        ruff, mypy and the import contracts of the layers (no tests)"
	@echo "make bench       drift benchmark (Spark vs DuckDB vs Evidently, 1M and 10M rows) -> docs/benchmarks.md"
	@echo "make ab-coverage A/B readout interval coverage over $(SEEDS) seeds of the demo scenario -> bench/ab_coverage.json"
	@echo "make backfill START=YYYY-MM-DD END=YYYY-MM-DD [REPROCESS=none|failed|completed] [FORCE=1: close an open backfill]"
	@echo "make mlflow-ui   serve the MLflow UI of the local tracking database on port $(MLFLOW_PORT)"
	@echo "make evidently-ui  serve the Evidently workspace (a project per model, its dashboard) on port $(EVIDENTLY_PORT)"
	@echo "make summary START=... END=...   print the daily summary from the result tables"
	@echo "make engine-up   start the Spark engine (a Spark Connect server on $$SPARK_REMOTE); engine-down stops it"
	@echo "make airflow-up  start the Airflow UI, scheduler and dag-processor (http://127.0.0.1:28080); airflow-down stops them"
	@echo "make bench-pipeline  the whole daily evaluation vs DuckDB at 1M and 10M rows -> bench/results/pipeline.json"
	@echo "make cluster-up  PostgreSQL, a Spark standalone master + worker, the engine on them, an MLflow server"
	@echo "make cluster-env the exports that point the pipeline at that stack; cluster-down stops it"
	@echo "make test-cluster  one day through the real DAG on that stack (started and stopped by the test)"
	@echo "make clean       stop the engine, remove local state (.local/) and published reports"

prereqs:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found: Python 3.11 is required (set PYTHON=/path/to/python3.11)"; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' || { echo "error: $(PYTHON) is $$($(PYTHON) --version 2>&1); Python 3.11 is required"; exit 1; }
	@command -v java >/dev/null 2>&1 || { echo "error: java not found: Java 17 is required by Spark (install openjdk-17-jre-headless)"; exit 1; }
	@v=$$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1); \
	  [ "$${v:-0}" -ge 17 ] || { echo "error: Java $$v found; Java 17 or newer is required by Spark 4"; exit 1; }

$(STAMP): requirements.txt constraints.txt pyproject.toml | prereqs
	@[ -x $(VENV)/bin/python ] || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q -r requirements.txt -c constraints.txt
	$(VENV)/bin/python -m pip install -q --no-deps -e .
	@# The Data Docs' page assets from the npm registry, once per environment (offline_eval/io/gx_assets.py);
	@# without network the first validation tries again, and the pages fall back to the CDNs.
	-$(VENV)/bin/python -m offline_eval.io.gx_assets
	@touch $@

$(DEV_STAMP): $(STAMP) requirements-dev.txt
	$(VENV)/bin/python -m pip install -q -r requirements-dev.txt -c constraints.txt
	@touch $@

install: $(STAMP)

demo: $(STAMP)
	@$(ENV) START=$(START) DAYS=$(DAYS) IMPRESSIONS_PER_DAY=$(IMPRESSIONS_PER_DAY) bash scripts/demo.sh

backfill: $(STAMP)
	@[ -n "$(START)" ] && [ -n "$(END)" ] || { echo "usage: make backfill START=YYYY-MM-DD END=YYYY-MM-DD"; exit 2; }
	@$(ENV) FORCE=$(FORCE) bash scripts/backfill.sh "$(START)" "$(END)" "$(REPROCESS)"

summary: engine-up
	@$(ENV) offline-eval summary --start $(START) --end $(END)

engine-up: $(STAMP)
	@$(ENV) offline-eval engine start

engine-down: $(STAMP)
	@$(ENV) offline-eval engine stop

airflow-up: $(STAMP) engine-up
	@$(ENV) . scripts/airflow_stack.sh && airflow_init && airflow_start && \
	  echo "Airflow UI: $$AIRFLOW__API__BASE_URL (make airflow-down stops it)"

airflow-down: $(STAMP)
	@$(ENV) . scripts/airflow_stack.sh && airflow_stop

mlflow-ui: $(STAMP)
	@$(ENV) echo "MLflow UI on http://127.0.0.1:$(MLFLOW_PORT) (tracking $$MLFLOW_TRACKING_URI)" && \
	  mlflow ui --backend-store-uri "$$MLFLOW_TRACKING_URI" --host 127.0.0.1 --port $(MLFLOW_PORT)

# The workspace publish fills (Settings.evidently_workspace): <OFFLINE_EVAL_HOME>/evidently.
evidently-ui: $(STAMP)
	@$(ENV) mkdir -p "$$OFFLINE_EVAL_HOME/evidently" && \
	  echo "Evidently UI on http://127.0.0.1:$(EVIDENTLY_PORT) (workspace $$OFFLINE_EVAL_HOME/evidently)" && \
	  evidently ui --workspace "$$OFFLINE_EVAL_HOME/evidently" --host 127.0.0.1 --port $(EVIDENTLY_PORT)

test: lint
	@bash scripts/ensure_chromium.sh
	@$(ENV) python -m pytest $(PYTEST_ARGS)

# Guardrails, also the first step of make test: ruff (with Airflow's AIR rules on dags/), mypy on
# the library's lower layers, and the import contracts of DESIGN.md's layers (pyproject.toml).
lint: $(DEV_STAMP)
	@$(ENV) ruff check . && mypy && lint-imports --no-cache

# One day through the real DAG on the multi-process stack (PostgreSQL, standalone Spark, MLflow
# server); needs PostgreSQL's server binaries and Debian's libpostgresql-jdbc-java.
test-cluster: $(DEV_STAMP)
	@$(ENV) python -m pytest -m cluster tests/cluster $(PYTEST_ARGS)

cluster-up: $(STAMP)
	@$(ENV) python scripts/cluster.py up

cluster-env: $(STAMP)
	@$(ENV) python scripts/cluster.py env

cluster-down: $(STAMP)
	@$(ENV) python scripts/cluster.py down

# Unit tests only (no Airflow end-to-end run).
test-fast: $(DEV_STAMP)
	@$(ENV) python -m pytest -m "not e2e" $(PYTEST_ARGS)

# Drift benchmark: Spark vs DuckDB vs Evidently at 1M and 10M rows -> docs/benchmarks.md.
bench: $(DEV_STAMP) engine-up
	@$(ENV) python bench/drift_bench.py --rows "$(BENCH_ROWS)" $(BENCH_ARGS)

# The whole daily evaluation of one day vs a DuckDB SQL reference -> bench/results/pipeline.json.
bench-pipeline: $(DEV_STAMP)
	@$(ENV) python bench/pipeline_bench.py --rows "$(BENCH_ROWS)" $(BENCH_ARGS)

# Does the readout's 95% interval cover the generator's true lift 95% of the time? (about 30 s a seed)
ab-coverage: $(STAMP) engine-up
	@$(ENV) python bench/ab_coverage.py --seeds $(SEEDS) --out bench/ab_coverage.json

clean:
	@[ ! -x $(VENV)/bin/offline-eval ] || $(ENV) offline-eval engine stop
	rm -rf .local
	find reports -mindepth 1 ! -name README.md -exec rm -rf {} +

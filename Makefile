# Two commands on a fresh machine with Python 3.11: `make demo` and `make test`.
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
export PYTHONPATH := $(CURDIR)/plugins

.PHONY: venv manifest browser demo test test-fast bench backfill airflow env lint format down clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements-dev.txt
	touch $@

venv: $(VENV)/.installed  ## create .venv with Airflow, Cosmos, dbt and the test tools

# The silver/gold DAGs are rendered from this manifest (no dbt parse at DAG parse time).
# Rebuilt when any file of the dbt project changes; `dbt parse` never connects (dummy WAREHOUSE_*).
MANIFEST := include/dbt/target/manifest.json
DBT_SOURCES := $(shell find include/dbt -type f \( -name '*.sql' -o -name '*.yml' -o -name '*.yaml' \) \
	-not -path 'include/dbt/target/*' -not -path 'include/dbt/logs/*' -not -path 'include/dbt/dbt_packages/*')

$(MANIFEST): $(VENV)/.installed $(DBT_SOURCES) docker/dbt-manifest.sh
	PATH="$(CURDIR)/$(BIN):$$PATH" bash docker/dbt-manifest.sh include/dbt

manifest: $(MANIFEST)  ## dbt parse: include/dbt/target/manifest.json, read by the silver and gold DAGs

demo: venv manifest  ## embedded Postgres, seeded Supabase-shaped source, the DAGs run through Airflow, results printed
	$(BIN)/python -m medallion.localstack demo

browser:  ## Debian's Chromium for the UI test (Playwright drives it; no browser download)
	test -x /usr/bin/chromium || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends chromium)

test: venv manifest browser  ## the whole suite (what CI runs)
	$(BIN)/python -m pytest

test-fast: venv manifest  ## everything but the end-to-end Airflow/dbt runs
	$(BIN)/python -m pytest -m "not slow"

bench: venv manifest  ## replication vs a psql binary COPY pipe; silver+gold via Airflow vs bare dbt build
	$(BIN)/python bench/copy_bench.py
	$(BIN)/python bench/transform_bench.py

backfill: venv manifest  ## bronze -> silver -> gold for the intervals of [FROM, TO) on the local stack (STEP=hour|day, DRY=1 lists them)
	@test -n "$(FROM)" -a -n "$(TO)" || { echo "usage: make backfill FROM=2026-11-20T00:00 TO=2026-11-21T00:00 [STEP=day] [DRY=1]"; exit 2; }
	$(BIN)/python -m medallion.backfill --local-stack --from "$(FROM)" --to "$(TO)" --step $(or $(STEP),hour) $(if $(DRY),--dry-run)

airflow: venv manifest  ## Airflow UI and scheduler on the local stack: http://localhost:8080 (MEDALLION_AIRFLOW_PORT)
	$(BIN)/python -m medallion.localstack airflow

env:  ## `export` lines for the airflow CLI against the local stack: eval "$$(make -s env)"
	@$(BIN)/python -m medallion.localstack env

lint: venv
	$(BIN)/ruff check plugins dags tests bench
	$(BIN)/ruff format --check plugins dags tests bench

format: venv
	$(BIN)/ruff format plugins dags tests bench
	$(BIN)/ruff check --fix plugins dags tests bench

down:  ## stop the local Postgres servers and the mail sink (data stays in .local/)
	$(BIN)/python -m medallion.localstack down

clean: down
	rm -rf .local include/dbt/target include/dbt/logs

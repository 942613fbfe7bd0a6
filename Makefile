# Two commands on a fresh machine with Python 3.11: `make demo` and `make test`.
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
export PYTHONPATH := $(CURDIR)/plugins

.PHONY: venv browser demo test test-fast bench airflow lint format down clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements-dev.txt
	touch $@

venv: $(VENV)/.installed  ## create .venv with Airflow, Cosmos, dbt and the test tools

demo: venv  ## embedded Postgres, seeded Supabase-shaped source, the DAGs run through Airflow, results printed
	$(BIN)/python -m medallion.localstack demo

browser:  ## Debian's Chromium for the UI test (Playwright drives it; no browser download)
	test -x /usr/bin/chromium || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends chromium)

test: venv browser  ## the whole suite (what CI runs)
	$(BIN)/python -m pytest

test-fast: venv  ## everything but the end-to-end Airflow/dbt runs
	$(BIN)/python -m pytest -m "not slow"

bench: venv  ## replication throughput vs a psql binary COPY pipe, same run (N=rows RUNS=rounds)
	$(BIN)/python bench/copy_bench.py

airflow: venv  ## Airflow UI and scheduler on the local stack: http://localhost:8080
	$(BIN)/python -m medallion.localstack airflow

lint: venv
	$(BIN)/ruff check plugins dags tests bench
	$(BIN)/ruff format --check plugins dags tests bench

format: venv
	$(BIN)/ruff format plugins dags tests bench
	$(BIN)/ruff check --fix plugins dags tests bench

down:  ## stop the local Postgres servers (data stays in .local/)
	$(BIN)/python -m medallion.localstack down

clean: down
	rm -rf .local include/dbt/target include/dbt/logs

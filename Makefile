# Two commands on a fresh machine with Python 3.11: `make demo` and `make test`.
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
export PYTHONPATH := $(CURDIR)/plugins

.PHONY: venv lock manifest browser demo test test-fast bench backfill airflow env lint format hooks down clean

# The venv installs the dev lock exactly: every package pinned there, nothing resolved at install
# time (--no-deps), then `pip check` proves the lock is complete and consistent.
$(VENV)/.installed: requirements-dev.lock
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q --no-deps -r requirements-dev.lock
	$(BIN)/python -m pip check
	touch $@

venv: $(VENV)/.installed  ## create .venv with Airflow, Cosmos, dbt and the dev tools, from requirements-dev.lock

# The locks: every package of the image (requirements-image.lock) and of the venv
# (requirements-dev.lock) pinned for Python 3.11 on Linux, resolved by uv from the package index
# only (--no-config and no UV_* index settings: no local wheel folders or mirrors). The image lock is
# constrained by the dev lock, so the image ships the versions the tests ran. uv keeps the
# existing pins that still fit; `make lock UPGRADE=1` moves everything to the newest versions.
# tests/test_requirements_lock.py fails when a lock and its requirements*.txt disagree.
UV_COMPILE = env -u UV_INDEX_URL -u UV_EXTRA_INDEX_URL -u UV_DEFAULT_INDEX -u UV_INDEX -u UV_FIND_LINKS \
	$(BIN)/uv --no-config pip compile --quiet --python-version 3.11 --python-platform linux \
	--custom-compile-command "make lock" $(if $(UPGRADE),--upgrade)

lock: $(VENV)/.installed  ## re-resolve requirements-image.lock and requirements-dev.lock from requirements*.txt
	$(UV_COMPILE) requirements-dev.txt -o requirements-dev.lock
	$(UV_COMPILE) requirements-image.txt -c requirements-dev.lock -o requirements-image.lock

# The silver/gold DAGs are rendered from this manifest (no dbt parse at DAG parse time).
# Rebuilt when any file of the dbt project changes, or is added or removed (its folder's mtime);
# `dbt parse` never connects (dummy WAREHOUSE_*).
MANIFEST := include/dbt/target/manifest.json
DBT_SOURCES := $(shell find include/dbt \( -type d -o -name '*.sql' -o -name '*.yml' -o -name '*.yaml' -o -name '*.md' \) \
	-not -path 'include/dbt/target*' -not -path 'include/dbt/logs*' -not -path 'include/dbt/dbt_packages*')

$(MANIFEST): $(VENV)/.installed $(DBT_SOURCES) docker/dbt-manifest.sh
	PATH="$(CURDIR)/$(BIN):$$PATH" bash docker/dbt-manifest.sh include/dbt

manifest: $(MANIFEST)  ## dbt parse: include/dbt/target/manifest.json, read by the silver and gold DAGs

demo: venv manifest  ## embedded Postgres, seeded Supabase-shaped source, the DAGs run through Airflow, results printed
	$(BIN)/python -m medallion.local.localstack demo

browser:  ## Debian's Chromium for the UI test (Playwright drives it; no browser download)
	test -x /usr/bin/chromium || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends chromium)

test: lint manifest browser  ## lint, then the whole suite (what CI runs)
	$(BIN)/python -m pytest

test-fast: venv manifest  ## everything but the end-to-end Airflow/dbt runs
	$(BIN)/python -m pytest -m "not slow"

bench: venv manifest  ## replication vs a psql binary COPY pipe; reconciliation vs count(*); silver+gold via Airflow vs bare dbt build; analytics silver at 1M vs 10M events
	$(BIN)/python bench/copy_bench.py
	$(BIN)/python bench/reconcile_bench.py
	$(BIN)/python bench/transform_bench.py
	$(BIN)/python bench/analytics_bench.py

backfill: venv manifest  ## bronze -> silver -> gold for the intervals of [FROM, TO) on the local stack (STEP=hour|day, DRY=1 lists them)
	@test -n "$(FROM)" -a -n "$(TO)" || { echo "usage: make backfill FROM=2026-11-20T00:00 TO=2026-11-21T00:00 [STEP=day] [DRY=1] [PRODUCT=p]"; exit 2; }
	$(BIN)/python -m medallion.local.localstack backfill --from "$(FROM)" --to "$(TO)" --step $(or $(STEP),hour) $(if $(DRY),--dry-run) $(if $(PRODUCT),--product $(PRODUCT))

airflow: venv manifest  ## Airflow UI and scheduler on the local stack: http://localhost:8080 (MEDALLION_AIRFLOW_PORT)
	$(BIN)/python -m medallion.local.localstack airflow

env:  ## `export` lines for the airflow CLI against the local stack: eval "$$(make -s env)"
	@$(BIN)/python -m medallion.local.localstack env

# Python: ruff (rules and format in pyproject.toml). SQL: sqlfluff (style in include/.sqlfluff),
# run from each SQL folder because sqlfluff takes the templater from the working directory's config:
# the dbt models and singular tests through the jinja templater (include/dbt/.sqlfluff says why not
# the dbt one), the plain SQL files parsed as Postgres and checked for lower case.
# (--processes 0: one per core; its worker pool leaves a harmless "leaked semaphore" warning at exit.)
SQLFLUFF := PYTHONWARNINGS=ignore:resource_tracker:UserWarning $(CURDIR)/$(BIN)/sqlfluff
lint: venv  ## ruff check + format check, sqlfluff on the dbt project and include/sql (make test runs it first)
	$(BIN)/ruff check plugins dags tests bench
	$(BIN)/ruff format --check plugins dags tests bench
	cd include/dbt && $(SQLFLUFF) lint models tests --processes 0 --disable-progress-bar
	cd include/sql && $(SQLFLUFF) lint . --disable-progress-bar

format: venv  ## ruff format + ruff check --fix, sqlfluff fix on the dbt models (review the diff)
	$(BIN)/ruff format plugins dags tests bench
	$(BIN)/ruff check --fix plugins dags tests bench
	cd include/dbt && $(SQLFLUFF) fix models tests --processes 0 --disable-progress-bar

hooks: venv  ## install the git pre-commit hook (.pre-commit-config.yaml: ruff, sqlfluff, check-yaml, private keys)
	$(BIN)/pre-commit install

down:  ## stop the local Postgres servers and the mail sink (data stays in .local/)
	$(BIN)/python -m medallion.local.localstack down

clean: down
	rm -rf .local include/dbt/target include/dbt/logs

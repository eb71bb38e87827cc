# Portal developer commands. From a fresh clone, only python3 and make are needed:
#   make run    set up, migrate, load the demo company, serve web + worker (+ demo targets) on http://127.0.0.1:8000/
#   make test   set up and run the whole test suite (SQLite, ORM broker)
# Everything else: `make help`.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PYTEST := $(VENV)/bin/pytest
RUFF   := $(VENV)/bin/ruff
STAMP  := $(VENV)/.installed

HOST ?= 127.0.0.1
PORT ?= 8000
# Extra arguments for pytest, e.g. `make test ARGS="-k login -x"`.
ARGS ?=
# Test processes (pytest-xdist). Each test file stays in one process (--dist loadfile): the reliability
# tests start qcluster workers whose queue names are per file. JOBS=0 runs in this process only.
JOBS ?= 2
XDIST := -n $(JOBS) --dist loadfile
# Benchmarks: sizes and a subset, e.g. `make bench SIZES=200,1000 ONLY=selfservice,web_load`.
SIZES ?= 1000,100000
ONLY  ?=
# The PostgreSQL database the PostgreSQL benchmarks use (its seeds are <name>_seed_<N>): pick your own on a shared server.
PORTAL_BENCH_DB ?= portal_bench
# The PostgreSQL + Redis stack for `make test-pg` (pytest-django creates test_<name>).
PG_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/portal
PG_REDIS_URL    ?= redis://127.0.0.1:6379/0

.DEFAULT_GOAL := help
.PHONY: help install run test test-pg lint format bench bench-pg migrations-check clean clean-db

help: ## List the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-17s %s\n", $$1, $$2}'

$(PY):
	$(PYTHON) -m venv $(VENV)

# Re-installs only when a requirements file changed since the last install.
$(STAMP): requirements.txt requirements-dev.txt | $(PY)
	$(PY) -m pip install --disable-pip-version-check --quiet -r requirements-dev.txt
	@touch $@

install: $(STAMP) ## Create .venv and install the pinned requirements (only when they changed)

run: $(STAMP) ## Migrate, load the demo company, serve web + worker + demo targets (PORT+1, +2) on http://127.0.0.1:8000/ (HOST, PORT) until Ctrl-C
	$(PY) manage.py migrate --noinput
	$(PY) manage.py seed_demo
	$(PY) manage.py serve $(HOST):$(PORT)

test: $(STAMP) ## Run the whole test suite on SQLite with the ORM broker
	DATABASE_URL= REDIS_URL= SQLITE_TEST_PATH=$(CURDIR)/var/test.sqlite3 $(PYTEST) $(XDIST) $(ARGS)

test-pg: $(STAMP) ## Run the whole test suite on PostgreSQL with the Redis broker
	DATABASE_URL=$(PG_DATABASE_URL) REDIS_URL=$(PG_REDIS_URL) $(PYTEST) $(XDIST) $(ARGS)

lint: $(STAMP) ## ruff check, ruff format --check and the layer contracts (lint-imports, see pyproject.toml)
	$(RUFF) check .
	$(RUFF) format --check .
	$(VENV)/bin/lint-imports

format: $(STAMP) ## Apply ruff's fixes and formatting
	$(RUFF) check --fix .
	$(RUFF) format .

bench: $(STAMP) ## Run the benchmarks (SIZES, ONLY), each in a fresh copy of its seed; figures to bench/results/ as JSON
	DATABASE_URL= REDIS_URL= $(PY) bench/run.py --sizes $(SIZES) --only "$(ONLY)"

bench-pg: $(STAMP) ## The benchmarks on PostgreSQL + Redis (drops and recreates PORTAL_BENCH_DB and its seeds)
	DATABASE_URL=$(PG_DATABASE_URL) REDIS_URL=$(PG_REDIS_URL) PORTAL_BENCH_DB=$(PORTAL_BENCH_DB) \
		$(PY) bench/run.py --sizes $(SIZES) --only "$(ONLY)"

migrations-check: $(STAMP) ## Fail if a model change has no migration
	DATABASE_URL= $(PY) manage.py makemigrations --check --dry-run

clean: ## Remove .venv, caches, collected static files and test artifacts (keeps the database in var/)
	rm -rf $(VENV) .pytest_cache .ruff_cache staticfiles test-artifacts
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

clean-db: ## Remove the local SQLite database in var/ (make run re-creates and re-seeds it)
	rm -rf var

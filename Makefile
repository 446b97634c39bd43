# The two commands a newcomer needs: `make up` (run the platform) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: up test install install-test lint bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

install: $(PY)
	$(PY) -m pip install --quiet '.[embedded]'

install-test: $(PY)
	$(PY) -m pip install --quiet '.[test]'

# Install and run the whole platform on embedded PostgreSQL and Redis (Ctrl-C stops it).
up: install
	$(VENV)/bin/flowyard up

# Install the project with its test tools, then lint and run every test against the install.
test: install-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy engine models
	$(VENV)/bin/pytest

bench: install-test
	$(PY) -m bench

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache

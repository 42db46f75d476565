# The two commands a newcomer needs: `make demo` runs the product locally,
# `make test` runs every check. Both create the virtualenv they need.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements-dev.txt */requirements.txt | cksum | cut -d' ' -f1)

.PHONY: help venv test lint typecheck unit template demo bench clean

help:
	@echo "make demo   run the gallery locally (moto + a Graph API stand-in), no AWS account needed"
	@echo "make test   run every check: lint, types, unit/moto/browser tests, template checks"
	@echo "make bench  measure speed and write BENCHMARKS.md"

$(STAMP): requirements-dev.txt ingest/requirements.txt serve/requirements.txt refresh/requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	rm -f $(VENV)/.installed-*
	touch $@

venv: $(STAMP)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: venv
	$(VENV)/bin/mypy .

unit: venv
	bash scripts/ensure-chromium.sh
	$(PY) -m pytest

template: venv
	bash scripts/check-template.sh

test: lint typecheck unit template

demo: venv
	$(PY) -m local $(ARGS)

bench: venv
	$(PY) -m bench $(ARGS)

clean:
	rm -rf $(VENV) .aws-sam .pytest_cache .mypy_cache .ruff_cache

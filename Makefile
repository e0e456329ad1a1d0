# scibind developer commands. `make demo` and `make test` set up .venv themselves (once; again only when
# requirements-dev.txt, constraints.txt or a pyproject.toml changes).
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.scibind-installed
REQS := requirements-dev.txt constraints.txt pyproject.toml $(wildcard */pyproject.toml plugins/*/pyproject.toml)
DEMO_DIR ?= demo-output
PYTEST_ARGS ?=

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: demo test bench lint docs venv clean

venv: $(STAMP)

$(STAMP): $(REQS)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check --no-compile -q -r requirements-dev.txt
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/scibind demo --out $(DEMO_DIR)

test: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) -m pip install --disable-pip-version-check -q --no-deps -c constraints.txt -r benchmarks/requirements.txt
	@for script in benchmarks/bench_*.py benchmarks/contrastive_loss.py; do echo "== $$script"; $(PY) $$script || exit 1; done

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

docs: $(STAMP)
	$(VENV)/bin/mkdocs build --strict

clean:
	rm -rf $(VENV) $(DEMO_DIR) site

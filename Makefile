# Everything a user runs is here; `make help` lists it.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: help setup test test-slow lint demo clean

help:  ## list the targets
	@grep -E '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): requirements.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	touch $(STAMP)

setup: $(STAMP)  ## create .venv from requirements.txt

test: $(STAMP)  ## run the test suite (CPU, a few minutes)
	$(PY) -m pytest -q

test-slow: $(STAMP)  ## run the long tests too
	$(PY) -m pytest -q -m "slow or not slow"

lint: $(STAMP)  ## check style (ruff)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

demo: $(STAMP)  ## LE-SAM vs SGD on Fashion-MNIST on the CPU, then their test accuracies
	$(PY) train.py -m experiment=demo optimizer=sgd,lesam
	$(PY) scripts/compare.py outputs/demo

clean:  ## remove caches and the demo's runs (keeps .venv and outputs/ of real runs)
	rm -rf outputs/demo .pytest_cache
	find . -name __pycache__ -not -path './$(VENV)/*' -prune -exec rm -rf {} +

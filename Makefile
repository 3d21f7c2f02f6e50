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

# The paper's figures, drawn from run folders under FROM (default outputs) into FIG_DIR (default
# figures/). DRY=1 prints the command of every run and analysis a figure needs; ARGS="..." adds
# train.py overrides to each of its runs, ANALYSIS="..." analyze.py overrides to its analyses.
FIGURE = $(PY) scripts/figure.py $@ $(if $(FROM),--from $(FROM)) $(if $(FIG_DIR),--out $(FIG_DIR)) \
	$(if $(DRY),--dry) $(if $(ANALYSIS),--analysis "$(ANALYSIS)") $(ARGS)
.PHONY: fig3 fig4 fig5 fig6 fig7

fig3: $(STAMP)  ## Figure 3: top-50 Hessian eigenvalues and traces, LPF during training (SGD, SAM, LE-SAM)
	@$(FIGURE)

fig4: $(STAMP)  ## Figure 4: loss landscapes of SGD, SAM and LE-SAM (surface, contour, 1-D)
	@$(FIGURE)

fig5: $(STAMP)  ## Figure 5: LE-SAM's radius rho_t step by step over training
	@$(FIGURE)

fig6: $(STAMP)  ## Figure 6: SGD until epoch 160, then SAM or LE-SAM, vs each from the start
	@$(FIGURE)

fig7: $(STAMP)  ## Figure 7: accuracy against delta (LE-SAM) and alpha (LE-SAM+), three seeds
	@$(FIGURE)

clean:  ## remove caches and the demo's runs (keeps .venv and outputs/ of real runs)
	rm -rf outputs/demo .pytest_cache
	find . -name __pycache__ -not -path './$(VENV)/*' -prune -exec rm -rf {} +

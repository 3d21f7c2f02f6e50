# Everything a user runs is here; `make help` lists it.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: help setup test test-slow lint demo bench clean smoke tables recipes status $(TABLES)
TABLES := table1 table2 table3 table4 table5 table6 table7 table_lesam_plus table_dg
# make tableN [DRY=1] [FROM=DIR] [GPUS=0,1,..] [LAUNCHER=slurm] [SEEDS=0,1,2] [BENCH=file] [VARIANT=authors] [ARGS="key=value ..."]
# VARIANT=authors (table1, table4): the LE-SAM authors' code's recipe instead of the paper's, into tables/<table>_authors.*
TABLE_OPTIONS = $(if $(DRY),--dry) $(if $(GPUS),--gpus $(GPUS)) $(if $(VARIANT),--variant $(VARIANT)) \
	$(if $(LAUNCHER),--launcher $(LAUNCHER)) $(if $(SEEDS),--seeds $(SEEDS)) $(if $(BENCH),--bench $(BENCH)) $(ARGS)

help:  ## list the targets
	@grep -E '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'
	@echo "GPU-hours: from the paper's Table 6 times (one RTX 5090); BENCH=file (a make bench JSON) gives them"
	@echo "from measured times: make help BENCH=file, make tableN DRY=1 BENCH=file. See a table's commands first: make tableN DRY=1"
	@$(if $(BENCH),$(PY) scripts/table.py all --dry --bench $(BENCH) 2>&1 >/dev/null | grep -v '^skipped')

$(STAMP): requirements.txt pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

setup: $(STAMP)  ## create .venv: the pinned requirements.txt, then this package in place (pip install -e .)

test: $(STAMP)  ## run the test suite on the CPU: about 10 minutes on two idle cores (about 40 when other work shares them)
	$(PY) -m pytest -q

test-slow: $(STAMP)  ## run the long tests too (about 15 more minutes: kills at every moment, SLURM, the smokes)
	$(PY) -m pytest -q -m "slow or not slow"

lint: $(STAMP)  ## check style (ruff)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

demo: $(STAMP)  ## LE-SAM vs SGD on Fashion-MNIST on the CPU, then their test accuracies: about 5 minutes on two idle cores (about 10 when other work shares them)
	$(PY) train.py -m experiment=demo optimizer=sgd,lesam
	$(PY) scripts/compare.py outputs/demo

bench: $(STAMP)  ## time SGD, SAM, LE-SAM per epoch over models, loaders, compile (ARGS="--models resnet18 ...")
	$(PY) scripts/bench.py $(ARGS)

table1:  ## Table 1: CIFAR-10/100 x ResNet-18, WRN-28-10, PyramidNet-110 x 7 methods x 3 seeds (126 runs, about 430 GPU-hours)
table2:  ## Table 2: ImageNet x ResNet-50, ResNet-101 x 7 methods x 3 seeds (42 runs, GPU-hours not estimated)
table3:  ## Table 3: ViT-B/16 fine-tuned on CIFAR-10/100 x SGD, SAM, LE-SAM x 3 seeds (18 runs, GPU-hours not estimated)
table4:  ## Table 4: LE-SAM+ on CIFAR-100 x 3 backbones x SAM, LE-SAM, LE-SAM+ x 3 seeds (27 runs, about 100 GPU-hours)
table_lesam_plus:  ## the same as table4 (Section 6.1's LE-SAM+ table)
table5:  ## Table 5: PGD robustness, CIFAR-10/100 x SAM, LE-SAM x 3 seeds (12 runs, each attacked; GPU-hours not estimated)
table6:  ## Table 6: time per epoch, from the speed benchmark's JSON (BENCH=file; no runs)
table7:  ## Table 7: CIFAR-100-LT x imbalance 100, 50 x GLMC, +SAM, +LE-SAM x 3 seeds (18 runs, GPU-hours not estimated)
table_dg:  ## domain generalisation: PACS, VLCS x 4 source domains x ERM++, SAM, LE-SAM x 3 seeds (72 runs, GPU-hours not estimated)

$(TABLES): $(STAMP)
	@$(PY) scripts/table.py $@ $(if $(FROM),--from $(FROM)) $(TABLE_OPTIONS)

tables: $(STAMP)  ## write every table from the runs under outputs/ (or FROM=DIR); launches nothing
	@$(PY) scripts/table.py all --from $(or $(FROM),outputs) $(TABLE_OPTIONS)

recipes: $(STAMP)  ## what each cell of a table trains with: make recipes TABLE=table1 [SOURCES=1: where each value comes from] [VARIANT=authors]
	@$(PY) scripts/recipes.py $(or $(TABLE),table1) $(if $(SOURCES),--sources) $(if $(VARIANT),--variant $(VARIANT))

status: $(STAMP)  ## where each run of a table stands (done, running, stopped, ...) and the GPU-hours left: make status [TABLE=tableN] [FROM=DIR]
	@$(PY) scripts/status.py $(or $(TABLE),all) $(if $(FROM),--from $(FROM)) $(if $(SEEDS),--seeds $(SEEDS)) $(ARGS)

smoke: $(STAMP)  ## every experiment preset for 2 steps, tiny, on synthetic data; then every table end to end
	$(PY) scripts/smoke.py
# The paper's figures, drawn from run folders under FROM (default outputs) into FIG_DIR (default
# figures/). DRY=1 prints the command of every run and analysis a figure needs; ARGS="..." adds
# train.py overrides to each of its runs, ANALYSIS="..." analyze.py overrides to its analyses;
# VARIANT=authors trains its runs with the authors' code's recipe and draws into figures/authors/.
FIG_VARIANT = $(filter-out paper,$(VARIANT))
FIGURE = $(PY) scripts/figure.py $@ $(if $(FROM),--from $(FROM)) --out $(or $(FIG_DIR),figures$(if $(FIG_VARIANT),/$(FIG_VARIANT))) \
	$(if $(DRY),--dry) $(if $(ANALYSIS),--analysis "$(ANALYSIS)") $(if $(FIG_VARIANT),recipe_variant=$(FIG_VARIANT)) $(ARGS)
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

# The front door. `make help` lists every target and the variables it reads.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# Datasets and runs (override on the command line: make train-real DATA=out/cifar5m N=10000)
OUT ?= out/cifar5m
DATA ?= $(OUT)
LABELER ?=
LABELER_DIR ?= out/labeler
CIFAR10 ?= out/cifar10
MODEL ?= google/ddpm-cifar10-32
SAMPLER ?= dpmpp
STEPS ?=
TRAIN ?= 5000000
TEST ?= 1000000
SHARD_SIZE ?= 10000
SEED ?= 0
REPO ?=
IMAGENET ?=
N ?= 50000
NS ?= 5000,10000,25000,50000
MODELS ?= preact-resnet18
SEEDS ?=
LRS ?= 0.1
PRESET ?= paper-cifar5m
RUN ?= out/runs/$(PRESET)-$(MODE)-n$(N)
EXP ?= out/runs/bootstrap-n$(N)
SWEEP ?= out/runs/sweep
ARGS ?=
VARS := OUT DATA IMAGENET LABELER LABELER_DIR CIFAR10 MODEL SAMPLER STEPS TRAIN TEST SHARD_SIZE SEED REPO N NS MODELS SEEDS LRS PRESET RUN EXP SWEEP ARGS

.PHONY: help install test test-all lint format demo demo-models cifar10 labeler cifar5m quality dogbird verify info publish train-real train-ideal bootstrap sweep report bench bench-scale bench-gpu clean

help: ## list targets and variables
	@echo "Targets:"
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | awk -F'\t' '{printf "  %-12s %s\n", $$1, $$2}'
	@echo "Variables (current value):"
	@$(foreach v,$(VARS),printf "  %-11s %s\n" "$(v)" "$($(v))";)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch/torchvision pinned first (the builds on this machine's disk); pyproject states ranges
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e ".[test]"
	touch $(STAMP)

install: $(STAMP) ## create .venv and install the toolkit (done automatically by every target)

test: $(STAMP) ## the quick tier of the offline tests (< 3 min on 2 cores; not the `slow` ones)
	$(PY) -m pytest -q $(ARGS)

test-all: $(STAMP) ## every offline test, the `slow` ones too (GPU tests skip themselves without CUDA)
	$(PY) -m pytest -q -m "" $(ARGS)

lint: $(STAMP) ## ruff (lint, import order, format check) and mypy, as configured in pyproject.toml
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

format: $(STAMP) ## apply ruff's fixes and formatter to the whole tree
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

demo: $(STAMP) ## the whole pipeline on scikit-learn's digits, offline, on a laptop (< 10 min)
	$(PY) -m demo run $(ARGS)

demo-models: $(STAMP) ## retrain the demo's digits diffusion model and labeler (demo/models)
	$(PY) -m demo train-models --out demo/models $(ARGS)

cifar10: $(STAMP) ## import real CIFAR-10 (uoft-cs/cifar10 from the Hub, 50K train + 10K test) into CIFAR10
	$(PY) -m shards import uoft-cs/cifar10 --out $(CIFAR10) $(ARGS)

labeler: $(STAMP) ## fine-tune BiT-M-R152x2 on CIFAR10 (BiT-HyperRule) into LABELER_DIR, measured on its test split
	$(PY) -m train finetune --data $(CIFAR10) --preset bit-hyperrule --out $(LABELER_DIR) $(ARGS)

# The labeler: LABELER if set, else the fine-tuned one in LABELER_DIR when it exists; measured on CIFAR10's
# test split first when that dataset exists (`make cifar10`).
CIFAR5M_LABELER = $(or $(LABELER),$(if $(wildcard $(LABELER_DIR)/config.json),local-dir:$(LABELER_DIR)))
cifar5m: $(STAMP) ## generate a CIFAR-5m-like dataset (labeler: LABELER, else LABELER_DIR; measured on CIFAR10)
	@if [ -z "$(CIFAR5M_LABELER)" ]; then echo "error: no labeler: $(LABELER_DIR)/config.json does not exist and LABELER" \
	  "is not set; give the 10-way CIFAR-10 labeler, e.g. make cifar5m LABELER=hf-hub:ORG/NAME or" \
	  "LABELER=local-dir:/path/to/timm-model" >&2; exit 2; fi
	$(PY) -m cifar5m generate --model $(MODEL) --labeler $(CIFAR5M_LABELER) --sampler $(SAMPLER) $(if $(STEPS),--steps $(STEPS)) \
	  $(if $(wildcard $(CIFAR10)/manifest.json),--labeler-eval $(CIFAR10)) \
	  --train $(TRAIN) --test $(TEST) --samples-per-shard $(SHARD_SIZE) --seed $(SEED) --out $(OUT) $(ARGS)

dogbird: $(STAMP) ## ImageNet -> hunting dogs vs birds -> shards: make dogbird IMAGENET=/data/imagenet OUT=out/dogbird
	@if [ -z "$(IMAGENET)" ]; then echo "error: IMAGENET is not set: give an ImageNet folder, parquet or WebDataset" \
	  "source, e.g. make dogbird IMAGENET=/data/imagenet OUT=out/dogbird (see python -m dogbird build --help)" >&2; exit 2; fi
	$(PY) -m dogbird build --imagenet $(IMAGENET) --out $(if $(filter file,$(origin OUT)),out/dogbird,$(OUT)) \
	  --seed $(SEED) $(ARGS)
quality: $(STAMP) ## quality report of DATA against real CIFAR10 (FID/KID, neighbours, balance) in DATA/extras
	$(PY) -m cifar5m report $(DATA) --reference $(CIFAR10) $(ARGS)

verify: $(STAMP) ## re-hash, count and decode every shard of DATA
	$(PY) -m shards verify $(DATA)

info: $(STAMP) ## counts, classes and label histogram of DATA
	$(PY) -m shards info $(DATA)

publish: $(STAMP) ## verify DATA, then upload it to the Hub: make publish DATA=out/cifar5m REPO=me/cifar5m
	@if [ -z "$(REPO)" ]; then echo "error: REPO is not set: make publish DATA=$(DATA) REPO=me/my-dataset" >&2; exit 2; fi
	$(PY) -m shards publish $(DATA) --repo $(REPO) $(ARGS)

train-real: MODE=real
train-real: $(STAMP) ## Real World run on n samples: make train-real DATA=out/cifar5m N=50000
	$(PY) -m train run --data $(DATA) --preset $(PRESET) --mode real --n $(N) --out $(RUN) $(ARGS)

train-ideal: MODE=ideal
train-ideal: $(STAMP) ## Ideal World run (fresh samples every step): make train-ideal DATA=out/cifar5m
	$(PY) -m train run --data $(DATA) --preset $(PRESET) --mode ideal --out $(RUN) $(ARGS)

bootstrap: $(STAMP) ## Real (N) vs Ideal with one config, SEEDS seeds of each (a paper preset: 10), then report.md + plots in EXP
	$(PY) -m train bootstrap --data $(DATA) --preset $(PRESET) --n $(N) $(if $(SEEDS),--seeds $(SEEDS)) --out $(EXP) $(ARGS)

sweep: $(STAMP) ## grid over NS x MODELS x LRS x SEEDS (resumable), then the Real vs Ideal scatter and L(n)
	$(PY) -m train sweep --data $(DATA) --preset $(PRESET) --n $(NS) --model $(MODELS) --lr $(LRS) $(if $(SEEDS),--seeds $(SEEDS)) --out $(SWEEP) $(ARGS)

report: $(STAMP) ## re-render plots and tables of a run, bootstrap or sweep folder: make report EXP=out/runs/...
	$(PY) -m train report $(EXP)

bench: $(STAMP) ## CPU benchmarks (ratios against named baselines, same run)
	$(PY) bench/bench_shards.py
	$(PY) bench/bench_sampler.py
	$(PY) bench/bench_train.py
	$(PY) bench/bench_dogbird.py
	$(PY) bench/bench_npz.py

bench-scale: $(STAMP) ## cost curves at 10K/100K/1M samples (time, peak memory, growth exponents, 6M projections)
	$(PY) bench/bench_scale.py $(ARGS)

bench-gpu: $(STAMP) ## GPU figures in one call, < 10 min on one H200 (needs CUDA; ARGS=--tiny checks it on CPU)
	$(PY) bench/gpu_figures.py $(ARGS)

clean: ## remove the virtual environment and caches (not datasets or runs)
	rm -rf $(VENV) .pytest_cache

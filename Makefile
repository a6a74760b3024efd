# Two commands on a fresh clone:
#   make run   set up .venv, fetch + import the benchmark logs, train and promote a first model, serve on :8000
#   make test  set up .venv and run the whole test suite
PY       ?= python3
VENV     ?= .venv
BIN      := $(VENV)/bin
HOST     ?= 127.0.0.1
PORT     ?= 8000
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false
# A local copy of the benchmark files beside the clone (as in this project's CI) saves the download.
MIRROR := $(wildcard $(abspath ../shared/data))
ifneq ($(MIRROR),)
export OIRL_MIRROR_DIR ?= $(MIRROR)
endif

.PHONY: run test install lint bench bench-agree bench-import bench-quality bench-train bench-embed bench-serve bench-encoders bench-rlhf \
	bench-ope bench-loop bench-partial bench-synthetic bench-decisions bench-replicas bench-scale clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip

# torch first, pinned: the CPU wheel on these machines; an unpinned torch would pull CUDA packages.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install torch==2.13.0
	$(BIN)/pip install -e '.[dev,postgres]'
	touch $@

install: $(VENV)/.installed

run: install
	$(BIN)/oirl serve --bootstrap --host $(HOST) --port $(PORT)

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .

bench-import: install
	$(BIN)/python benchmarks/import_speed.py

bench-quality: install
	$(BIN)/python benchmarks/quality.py

bench-ope: install
	$(BIN)/python benchmarks/ope.py

bench-loop: install
	$(BIN)/python benchmarks/loop.py
	$(BIN)/python benchmarks/loop_summary.py

bench-partial: install
	$(BIN)/python benchmarks/partial_logs.py

# Known-truth tasks shaped like a small team's logs (one prompt per query), default backend vs heads.
bench-synthetic: install
	$(BIN)/python benchmarks/synthetic_tasks.py --variants default backend=heads

bench-decisions: install
	$(BIN)/python benchmarks/decision_overhead.py --root $(or $(OIRL_MIRROR_DIR),$(HOME)/.local/share/prompt-oirl/benchmark)

# One process vs a 2-worker Dask LocalCluster on 10 perturbed copies of MAWPS (about an hour on 2 busy cores).
bench-scale: install
	nice $(BIN)/python benchmarks/scale.py --root $(or $(OIRL_MIRROR_DIR),$(HOME)/.local/share/prompt-oirl/benchmark) --task mawps --factor 10

bench-train: install
	$(BIN)/python benchmarks/train_speed.py --dataset mawps

bench-embed: install
	$(BIN)/python benchmarks/embed_speed.py

bench-agree: install
	$(BIN)/python benchmarks/served_vs_evaluated.py --root $(OIRL_MIRROR_DIR) --task mawps

bench-serve: install
	$(BIN)/python benchmarks/serve.py

# 3 `oirl serve` processes on one PostgreSQL (a scratch database on OIRL_BENCH_DATABASE_URL's server).
bench-replicas: install
	$(BIN)/python benchmarks/replicas.py $(if $(OIRL_MIRROR_DIR),--root $(OIRL_MIRROR_DIR))

bench-encoders: install
	$(BIN)/python benchmarks/encoders.py --agreement

# Installs TRL into its own virtual environments under benchmarks/rlhf/ (never a project dependency).
bench-rlhf: install
	$(BIN)/python benchmarks/rlhf/reward_accuracy.py
	$(BIN)/python benchmarks/rlhf_vs_trl.py

bench: bench-import bench-embed bench-train bench-quality bench-serve bench-rlhf

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info

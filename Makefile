# Two commands on a fresh machine: `make demo` and `make test`.
# Both create .venv and install optbench into it first.
#
# CPU machines get the CPU build of torch (TORCH=torch==2.13.0). On a GPU
# machine pass the CUDA build you want, e.g. `make demo TORCH=torch`, or install
# torch into .venv yourself before running make.

PYTHON ?= python3
VENV   ?= .venv
TORCH  ?= torch==2.13.0
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup demo test test-fast test-heavy clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "$(TORCH)"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/bench run --submission lion --workload cifar

# The compute-bound, timing-free tests (every submission on every workload,
# equation checks) run on two workers; everything that times, kills or
# launches processes runs alone afterwards, so no test shares cores with it.
PARALLEL_TESTS := tests/test_smoke_matrix.py tests/test_submissions_basic.py tests/test_norms.py \
                  tests/test_optimizers_packaged.py tests/test_optimizers_handwritten.py

test: setup
	$(BIN)/python -m pytest -q -n 2 -m "not heavy" $(PARALLEL_TESTS)
	$(BIN)/python -m pytest -q --durations=15 -m "not heavy" $(addprefix --ignore=,$(PARALLEL_TESTS))

# GPU-size models stepped on CPU (GPT-2 small on synthetic data: about two minutes).
test-heavy: setup
	$(BIN)/python -m pytest -q -m heavy

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow"

clean:
	rm -rf $(VENV) .pytest_cache

# Two commands on a fresh machine:  `make demo`  and  `make test`.
# Each creates (or reuses) .venv and installs the package through constraints.txt,
# which pins torch==2.13.0 so no step ever pulls a CUDA build of torch.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
ARGS   ?=
# two pytest workers on two cores: one BLAS/OpenMP thread each (oversubscription is 10-60x slower)
# Real datasets: $LANDSCAPE_DATA when set, else ../shared/data when that folder exists
# (developer machines and CI), else the per-user cache ~/.cache/landscape (downloaded and
# md5-verified on first use).
ifeq ($(LANDSCAPE_DATA),)
ifneq ($(wildcard ../shared/data/mnist/train-images-idx3-ubyte.gz),)
export LANDSCAPE_DATA := $(abspath ../shared/data)
endif
endif
TEST_ENV := OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 MPLBACKEND=Agg

.PHONY: install demo test test-all lint bench docs clean

$(STAMP): setup.cfg constraints.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt torch==2.13.0
	$(PY) -m pip install -q -c constraints.txt -e ".[test,lint,notebooks,docs]"
	$(PY) -m pip install -q --no-deps -c constraints.txt pyautoattack==0.2.0
	# the reference architectures of tests/test_zoo.py (the wheel only, never installed)
	$(PY) -m pip download -q --no-deps -d $(VENV)/reference robustbench==1.1.1
	touch $(STAMP)

install: $(STAMP)

## The main job: a small real study on MNIST (a few minutes on 2 CPU cores).
demo: $(STAMP)
	$(PY) -m landscape.demo $(ARGS)

## The whole default test suite: lint, unit tests + doctests, figure smoke runs, notebooks.
test: $(STAMP)
	$(VENV)/bin/ruff check landscape tests figures benchmarks
	$(VENV)/bin/ruff format --check landscape tests figures benchmarks
	$(TEST_ENV) $(PY) -m pytest -n 2 -q --durations=15 $(ARGS)
	$(TEST_ENV) $(PY) -m pytest -q -p no:cacheprovider --nbmake notebooks -o addopts=""
	$(TEST_ENV) $(PY) -m pytest -q -m notebook tests/test_notebooks.py

test-all: $(STAMP)
	$(PY) -m pytest -n 2 -q -m "" $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check landscape tests figures benchmarks
	$(VENV)/bin/ruff format --check landscape tests figures benchmarks

## The documentation site (mkdocs + mkdocstrings API reference) into site/; any warning is an error (shown, not hidden).
docs: $(STAMP)
	$(PY) -m mkdocs build --strict

bench: $(STAMP)
	$(PY) -m pip install -q --no-deps -c constraints.txt curvlinops-for-pytorch einops einconv linear-operator
	for f in benchmarks/bench_*.py; do $(PY) $$f || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache site

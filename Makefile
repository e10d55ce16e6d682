# Everything runs inside a local virtual environment in .venv/, created on first use, with the
# versions of requirements.lock (DEPS=newest: the newest releases pyproject.toml allows instead).
# Data: $CIFAR10_DIR if set (the folder holding data_batch_1..5 and test_batch), else a per-user
# cache, downloaded there on first use.
PYTHON ?= python3
DEPS   ?= locked
VENV   ?= .venv
BIN    := $(VENV)/bin
EXTRAS := test,report,cluster
UV     := uv==0.13.9
# make check-all: these Pythons, found on PATH or under `pyenv root`
PYTHONS ?= 3.10 3.11 3.12 3.13
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9]*.ipynb))
ifdef CIFAR10_DIR
export CIFAR10_DIR := $(abspath $(CIFAR10_DIR))
endif

.PHONY: help setup lock data lint check check-all check-one test notebooks pdf report beyond lab bench clean

help:
	@echo "make report  set up, get the data, run every notebook, write build/report.pdf"
	@echo "make check  linters (ruff, mypy) + the fast tests: about a minute, no CIFAR-10 needed"
	@echo "make check-all  make check in fresh environments, locked and newest, on each of $(PYTHONS)"
	@echo "make test    linters + every test (real CIFAR-10) + re-execute every notebook with nbval"
	@echo "make pdf     build/report.pdf from the executed notebooks (no re-run)"
	@echo "make beyond  retrain and store the runs of notebook 06 (10-12 h, resumable), then execute it"
	@echo "make lab     JupyterLab in the project's environment"
	@echo "make bench   the speed and memory benchmark"
	@echo "make lock    regenerate requirements.lock from pyproject.toml"

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

ifeq ($(DEPS),locked)
$(VENV)/.installed-locked: pyproject.toml requirements.lock | $(BIN)/activate
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	rm -f $(VENV)/.installed-*
	touch $@
else ifeq ($(DEPS),newest)
$(VENV)/.installed-newest: pyproject.toml | $(BIN)/activate
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --upgrade --upgrade-strategy eager -e ".[$(EXTRAS)]"
	rm -f $(VENV)/.installed-*
	touch $@
else
$(error DEPS=$(DEPS): use DEPS=locked (the default, requirements.lock) or DEPS=newest)
endif

setup: $(VENV)/.installed-$(DEPS)

# every dependency and extra, pinned with hashes, for every supported Python (pyproject's [tool.uv])
lock: | $(BIN)/activate
	$(BIN)/python -m pip install --quiet "$(UV)"
	$(BIN)/uv pip compile pyproject.toml --all-extras --universal --python-version 3.10 \
	    --generate-hashes --custom-compile-command "make lock" --quiet -o requirements.lock

# the Python V on the PATH (not a pyenv shim), else the newest V.x under `pyenv root`
find_python = { command -v python$(1) 2>/dev/null | grep -v /shims/ \
    || ls -d $$(pyenv root 2>/dev/null)/versions/$(1).*/bin/python$(1) 2>/dev/null | tail -n 1; }

# make check-one V=3.12 DEPS=newest: make check in a new environment build/envs/3.12-newest
check-one:
	@py=$$($(call find_python,$(V))); \
	if [ -z "$$py" ]; then echo "python$(V) not found on PATH or under pyenv root"; exit 1; fi; \
	echo "== Python $(V) ($$py), $(DEPS) versions"; \
	rm -rf build/envs/$(V)-$(DEPS); \
	$(MAKE) --no-print-directory check PYTHON=$$py VENV=build/envs/$(V)-$(DEPS) DEPS=$(DEPS)

# every Python of PYTHONS found here, locked and newest; says which failed, after trying all
check-all:
	@failed=""; for v in $(PYTHONS); do \
	    if [ -z "$$($(call find_python,$$v))" ]; then echo "== python$$v: not found, skipped"; \
	        continue; fi; \
	    for deps in locked newest; do \
	        $(MAKE) --no-print-directory check-one V=$$v DEPS=$$deps || failed="$$failed $$v-$$deps"; \
	    done; done; \
	if [ -n "$$failed" ]; then echo "make check failed on:$$failed"; exit 1; fi; \
	echo "make check passed on every Python found, locked and newest"

data: setup
	$(BIN)/python -c "from assignment3.data import find_data_dir; print('CIFAR-10 in', find_data_dir())"

lint: setup
	$(BIN)/ruff check assignment3 tests benchmarks report
	$(BIN)/mypy

# mypy beside the fast tests, which run in one process per core (pytest-xdist)
check: setup
	$(BIN)/ruff check assignment3 tests benchmarks report
	$(BIN)/mypy & mypy=$$!; $(BIN)/python -m pytest -n auto -m "not slow" tests; \
	    tests=$$?; wait $$mypy && exit $$tests

test: lint data
	$(BIN)/python -m pytest tests --nbval-lax $(NOTEBOOKS)

notebooks: setup data
	$(BIN)/jupyter nbconvert --to notebook --execute --inplace \
	    --ExecutePreprocessor.timeout=-1 $(NOTEBOOKS)

pdf: setup
	mkdir -p build
	$(BIN)/python report/build_pdf.py $(NOTEBOOKS) --output build/report.pdf

report: notebooks pdf

beyond: setup data
	ASSIGNMENT3_RETRAIN=1 $(BIN)/jupyter nbconvert --to notebook --execute --inplace \
	    --ExecutePreprocessor.timeout=-1 notebooks/06_beyond.ipynb

lab: setup
	$(BIN)/python -m pip install --quiet "jupyterlab>=4"
	cd notebooks && ../$(BIN)/jupyter lab

bench: setup data
	$(BIN)/python benchmarks/bench.py
	$(BIN)/python benchmarks/checkpoint_bench.py

clean:
	rm -rf build .pytest_cache

# Everything runs inside a local virtual environment in .venv/, created on first use.
# Data: $CIFAR10_DIR if set (the folder holding data_batch_1..5 and test_batch), else a per-user
# cache, downloaded there on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9]*.ipynb))
ifdef CIFAR10_DIR
export CIFAR10_DIR := $(abspath $(CIFAR10_DIR))
endif

.PHONY: help setup data lint check test notebooks pdf report beyond lab bench clean

help:
	@echo "make report  set up, get the data, run every notebook, write build/report.pdf"
	@echo "make check  linters (ruff, mypy) + the fast tests: about a minute, no CIFAR-10 needed"
	@echo "make test    linters + every test (real CIFAR-10) + re-execute every notebook with nbval"
	@echo "make pdf     build/report.pdf from the executed notebooks (no re-run)"
	@echo "make beyond  retrain and store the runs of notebook 06 (7-8 h, resumable), then execute it"
	@echo "make lab     JupyterLab in the project's environment"
	@echo "make bench   the speed and memory benchmark"

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/activate
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test,report,cluster]"
	touch $@

setup: $(VENV)/.installed

data: setup
	$(BIN)/python -c "from assignment3.data import find_data_dir; print('CIFAR-10 in', find_data_dir())"

lint: setup
	$(BIN)/ruff check assignment3 tests benchmarks report
	$(BIN)/mypy

check: lint
	$(BIN)/python -m pytest -m "not slow" tests

test: lint data
	$(BIN)/python -m pytest tests --nbval-lax $(NOTEBOOKS)

notebooks: setup data
	$(BIN)/jupyter nbconvert --to notebook --execute --inplace \
	    --ExecutePreprocessor.timeout=-1 $(NOTEBOOKS)

pdf: setup
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

# Two entry points: `make train` and `make test`. Both set up .venv first (torch 2.13.0, then rlmem).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.rlmem-installed
TORCH ?= torch==2.13.0

.PHONY: setup train test bench bench-sweep clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

train: setup
	$(BIN)/python -m rlmem.train agent=ppo core=gru env=repeat-previous

test: setup
	$(BIN)/python -m pytest -n 2 -q

bench: setup
	$(BIN)/python benchmarks/throughput.py

bench-sweep: setup
	$(BIN)/python benchmarks/sweep_launchers.py

clean:
	rm -rf $(VENV) outputs multirun build *.egg-info

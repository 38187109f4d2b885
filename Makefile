# Two commands on a fresh machine: `make demo` and `make test`. Both create ./.venv and install what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP_CORE := $(VENV)/.installed-core
STAMP_DEV := $(VENV)/.installed-dev

.PHONY: demo test install install-dev bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP_CORE): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e .
	touch $@

# torch 2.13.0 is pinned because a CPU build of it lies on this machine's disk; a looser spec pulls a CUDA build.
$(STAMP_DEV): $(STAMP_CORE)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev,torch,eval,train,web,ray]'
	touch $@

install: $(STAMP_CORE)
install-dev: $(STAMP_DEV)

demo: $(STAMP_CORE)
	$(BIN)/vidmatte demo

test: $(STAMP_DEV)
	$(BIN)/python -m pytest -q -rs

# make bench BENCH_ARGS=--quick for a short smoke run
bench: $(STAMP_DEV)
	$(BIN)/python benchmarks/run_all.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) demo-output

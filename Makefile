# Two entry points (README): `make demo` and `make test`. Both set up everything first:
# .venv, torch 2.13.0 (the CPU wheel on local disk; it must come before anything that depends on
# torch, or pip pulls a multi-GB CUDA build), the package, and the offline assets. Every step is
# guarded by a stamp file so a second run skips what is done.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip
TORCH_STAMP   := $(VENV)/.stamp-torch
PACKAGE_STAMP := $(VENV)/.stamp-package
ASSETS_STAMP  := $(VENV)/.stamp-assets
PYTEST_ARGS ?=

.PHONY: install demo test bench clean

install: $(ASSETS_STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(TORCH_STAMP): | $(BIN)/python
	$(PIP) install -q torch==2.13.0
	touch $@

$(PACKAGE_STAMP): $(TORCH_STAMP) pyproject.toml constraints.txt
	$(PIP) install -q -c constraints.txt -e '.[assets,export,serve,dev]'
	touch $@

$(ASSETS_STAMP): $(PACKAGE_STAMP) scripts/install-assets.sh
	bash scripts/install-assets.sh $(BIN)/python
	$(BIN)/transferkit bench-peak   # this machine's matmul peak, measured once: fit reports its share of it
	touch $@

demo: install
	$(BIN)/transferkit demo

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: install
	$(BIN)/python benchmarks/finetune_vs_hf.py

clean:
	rm -rf $(VENV) runs .pytest_cache

# Two commands: `make train` (install + train a VAE on the embedded digits) and `make test`.
# TORCH pins the PyTorch wheel installed first (a CPU build keeps the download small);
# override it, e.g. `make train TORCH="torch --index-url https://download.pytorch.org/whl/cu124"`.
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
BIN = $(VENV)/bin

.PHONY: train test install lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

install: $(VENV)/.installed

train: $(VENV)/.installed
	$(BIN)/reparam train $(ARGS)

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest -q $(ARGS)

lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache

# Kyso: two commands for a newcomer (`make run`, `make test`); `make bench` for the numbers.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA ?= var
HOST ?= 127.0.0.1
PORT ?= 8080
CODE_DIRS := signer certs exchange

# The demo keeps its passphrase in a file under var/ (created with mode 0600 on first run).
export KYSO_DATA := $(DATA)
export KYSO_PASSPHRASE_FILE ?= $(DATA)/secrets/passphrase

.PHONY: run test lint bench sysdeps venv clean

sysdeps:
	@bash tools/system-packages.sh

$(BIN)/.installed: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

venv: $(BIN)/.installed

run: sysdeps venv
	$(BIN)/kyso demo init --if-missing --base-url http://$(HOST):$(PORT)
	$(BIN)/kyso serve --host $(HOST) --port $(PORT)

lint: venv
	$(BIN)/ruff check $(CODE_DIRS) kyso tests
	$(BIN)/ruff format --check $(CODE_DIRS) kyso tests
	$(BIN)/mypy

test: sysdeps venv lint
	$(BIN)/pytest -q

bench: sysdeps venv
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) $(DATA) .pytest_cache .mypy_cache .ruff_cache

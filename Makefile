# Kyso: two commands for a newcomer (`make run`, `make test`); `make check` while working (the
# fast layers, under 90 s); `make bench` for the numbers.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA ?= var
HOST ?= 127.0.0.1
PORT ?= 8080
CODE_DIRS := signer certs exchange directory

# The demo keeps its passphrase in a file under var/ (created with mode 0600 on first run).
export KYSO_DATA := $(DATA)
export KYSO_PASSPHRASE_FILE ?= $(DATA)/secrets/passphrase

LOCK := requirements.lock
BOOTSTRAP_LOCK := tools/bootstrap.lock
UV := $(BIN)/uv
# `make lock UPGRADE=cryptography` moves one package to its newest allowed version, `UPGRADE=all`
# every one; plain `make lock` keeps every pin that still satisfies pyproject.
UPGRADE ?=
UPGRADE_FLAGS := $(if $(filter all,$(UPGRADE)),--upgrade,$(foreach p,$(UPGRADE),--upgrade-package $(p)))

.PHONY: run test check lint lock check-lock bench sysdeps venv clean

sysdeps:
	@bash tools/system-packages.sh

# Installs come from the lock only (exact versions, hashes); nothing is resolved here.
$(BIN)/.installed: $(LOCK) $(BOOTSTRAP_LOCK) pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --disable-pip-version-check --require-hashes --no-deps -r $(BOOTSTRAP_LOCK)
	@$(UV) pip sync -q --python $(BIN)/python --require-hashes $(LOCK)
	@$(UV) pip install -q --python $(BIN)/python --no-deps --no-build-isolation -e .
	@touch $@

venv: $(BIN)/.installed

run: sysdeps venv
	$(BIN)/kyso demo init --if-missing --base-url http://$(HOST):$(PORT)
	$(BIN)/kyso serve --host $(HOST) --port $(PORT)

# The only target that resolves versions: pyproject's ranges -> exact pins with hashes.
lock: venv
	$(UV) pip compile -q pyproject.toml tools/build.in --extra dev --generate-hashes \
		--python-version 3.11 $(UPGRADE_FLAGS) -o $(LOCK)
	$(UV) pip compile -q tools/bootstrap.in -c $(LOCK) --generate-hashes --python-version 3.11 \
		-o $(BOOTSTRAP_LOCK)

# No network: every requirement of pyproject is pinned in the lock, inside its range.
check-lock: venv
	$(BIN)/python tools/check_lock.py pyproject.toml $(LOCK) $(BOOTSTRAP_LOCK)

# lint-imports checks the layers and contracts of pyproject's [tool.importlinter].
lint: venv check-lock
	$(BIN)/ruff check $(CODE_DIRS) kyso tests tools
	$(BIN)/ruff format --check $(CODE_DIRS) kyso tests tools
	$(BIN)/mypy
	$(BIN)/lint-imports --no-logo

# The tests run on every core (pytest-xdist), a module per worker at a time (its module fixtures
# set up once); PYTEST_WORKERS=0 runs them in this process.
PYTEST_WORKERS ?= auto

# Everything: the lint, then every layer of tests, the system tests included (CI runs this).
test: sysdeps venv lint
	$(BIN)/pytest -q -n $(PYTEST_WORKERS) --dist loadfile

# The fast layers while working: ruff and every test but the system ones (no `kyso serve`
# subprocess, no CLI subprocess, no browser, crash, load or bomb; see README, Tests).
check: venv
	$(BIN)/ruff check $(CODE_DIRS) kyso tests tools
	$(BIN)/pytest -q -n $(PYTEST_WORKERS) --dist loadfile -m "not system"

bench: sysdeps venv
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) $(DATA) .pytest_cache .mypy_cache .ruff_cache .import_linter_cache

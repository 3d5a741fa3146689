# The two set-up commands of the README:
#   make run    install everything, then run the main job on the embedded defaults
#   make test   install everything, then ruff, mypy and the whole test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install run test lint typecheck format clean

$(BIN)/tierflow: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/tierflow
	infra/system/install.sh
	$(BIN)/tierflow kafka install
	$(BIN)/tierflow tiers install

run: install
	$(BIN)/tierflow up

lint: $(BIN)/tierflow
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(BIN)/tierflow
	$(BIN)/mypy
	$(BIN)/mypy bench

test: install lint typecheck
	$(BIN)/pytest

format: $(BIN)/tierflow
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

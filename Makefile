# Two commands a newcomer needs: `make serve` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: serve test lint typecheck install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

serve: $(STAMP)
	$(BIN)/sora-actors serve

lint: $(STAMP)
	$(BIN)/ruff check sora_actors tests bench
	$(BIN)/ruff format --check sora_actors tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

# The suite runs on two workers, a test file per worker at a time; test_scaleout restarts
# the shared PostgreSQL server, so it runs alone afterwards.
test: lint typecheck
	$(BIN)/pytest -q -n 2 --dist loadfile --ignore tests/acceptance/test_scaleout.py
	$(BIN)/pytest -q tests/acceptance/test_scaleout.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

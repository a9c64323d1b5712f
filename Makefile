# One bootstrap path for developers and CI: every target creates what it needs, idempotently.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CHECKOV_VENV := .venv-checkov
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20

.PHONY: setup demo test rehearsal bench clean

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -qq --upgrade pip
	$(BIN)/python -m pip install -qq -e '.[dev]'
	touch $@

$(CHECKOV_VENV)/.installed: requirements-checkov.txt
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install -qq -r requirements-checkov.txt
	touch $@

setup: $(BIN)/.installed $(CHECKOV_VENV)/.installed

demo: $(BIN)/.installed
	$(BIN)/vopr run --demo --max-seconds 25
	$(BIN)/vopr status --store vopr-results
	$(BIN)/vopr failures --store vopr-results

test: setup
	$(BIN)/python -m pytest

rehearsal: $(BIN)/.installed
	$(BIN)/python -m pytest tests/rehearsal -v

bench: $(BIN)/.installed
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) cdktf.out .pytest_cache

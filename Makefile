# Two commands do everything on a fresh machine with Python 3.10+ and make:
#   make run    install, fetch the data, train the default config, evaluate, draw figures, report
#   make test   install the same way and run the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NAME ?= default

.PHONY: install data run test bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

data: install
	$(BIN)/aevb data

run: data
	$(BIN)/aevb run --name $(NAME)

test: install
	$(BIN)/python -m pytest

bench: data
	$(BIN)/python bench/bench.py

clean:
	rm -rf $(VENV) runs bench/results

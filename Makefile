# Two commands do everything on a fresh machine with Python 3.10+ and make:
#   make run    install, fetch the data, train the default config, evaluate, draw figures, report
#   make test   install the same way and run the test suite (which builds the docs too)
#   make docs   the documentation site, into docs/_build/html
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NAME ?= default

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install browser debian-lists apt-packages data run test docs bench kernel clean

# uv installs what pip would (the same versions, from PyPI; the two lists compared package by package on 12-07) in a
# fifth of the time: 23 s against 55 s on a fresh 2-core machine, bytecode compiled as pip does (where
# PYTHONDONTWRITEBYTECODE is set, no process could write it later and each would compile its imports anew).
# If uv cannot install, pip does.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv
	$(BIN)/uv pip install --quiet --python $(BIN)/python --compile-bytecode -e '.[test,docs]' || \
	  $(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test,docs]'
	touch $(STAMP)

install: $(STAMP)

# The report's browser test drives Debian's Chromium (Playwright does not download a browser here).
browser:
	@command -v chromium >/dev/null 2>&1 || { echo "installing Debian's chromium for the browser test"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq \
	  --no-install-recommends chromium; }

# Fashion-MNIST comes from Debian's package dataset-fashion-mnist (apt-get download, no install):
# apt's package lists must know it; a fresh container has none until apt-get update.
debian-lists:
	@apt-cache show dataset-fashion-mnist >/dev/null 2>&1 || ! command -v apt-get >/dev/null || \
	  { echo "updating apt's package lists (for Fashion-MNIST's Debian package)"; $(SUDO) apt-get update -qq || true; }

data: install
	$(BIN)/aevb data

run: data
	$(BIN)/aevb run --name $(NAME)

# Test files run in parallel, one file per worker (its module fixtures made once), a worker per core, in the order
# tests/conftest.py gives them (the longest first; xdist would otherwise order files by their number of tests).
# What the tests need is installed first: the Python packages and, meanwhile, apt's (one apt-get at a time), so that
# on a fresh machine Chromium's download and unpacking overlap uv's.
WORKERS ?= auto
test:
	@$(MAKE) --no-print-directory -j2 install apt-packages
	$(BIN)/python -m pytest -n $(WORKERS) --dist loadfile --no-loadscope-reorder

apt-packages:
	@$(MAKE) --no-print-directory browser
	@$(MAKE) --no-print-directory debian-lists

# The "aevb" Jupyter kernel: this project's .venv, for a notebook or nbgrader run from another environment
# (course/nbgrader_config.py names it).
kernel: install
	$(BIN)/python -m ipykernel install --user --name aevb --display-name "Python (aevb)"

# The site, warnings as errors (broken links, unresolved references, a public function without a docstring);
# it executes the course notebook in smoke mode (its run under docs/_build). Open docs/_build/html/index.html.
docs: install
	$(BIN)/sphinx-build -W --keep-going -q -b html docs docs/_build/html
	@echo "docs: $(CURDIR)/docs/_build/html/index.html"

bench: data
	$(BIN)/python bench/bench.py; status=$$?; $(BIN)/python bench/readme.py && exit $$status

clean:
	rm -rf $(VENV) runs bench/results docs/_build docs/_generated

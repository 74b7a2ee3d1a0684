# The two commands of the README: `make book` and `make test`. Both create .venv and install on first use.
PROFILE ?= default
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install book test test-fast bench chapters clean distclean list

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

## Execute every chapter in _toc.yml on $(PROFILE) with papermill, then render the HTML with jupyter-book (-W).
book: $(STAMP)
	$(BIN)/sgdbayes book --profile $(PROFILE)

## Execute the chapters only (no HTML).
chapters: $(STAMP)
	$(BIN)/sgdbayes book --profile $(PROFILE) --no-html

## The whole test suite, the smoke-profile book build and browser check included.
test: $(STAMP)
	$(BIN)/python -m pytest

## Unit tests only (no book build).
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not book"

## Side-by-side speed ratios; writes _build/bench.json.
bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

list: $(STAMP)
	$(BIN)/sgdbayes list

clean:
	rm -rf _build book/*.ipynb

distclean: clean
	rm -rf $(VENV)

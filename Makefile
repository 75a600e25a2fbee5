# Every target creates .venv on first use, so a fresh clone needs only Python 3.11+.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test browser bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

## Run the demo: provider simulator + collector on loopback, writing ./var/switchyard.duckdb.
demo: $(STAMP)
	$(BIN)/switchyard demo

## Run the test suite (what CI runs).
test: $(STAMP) browser
	$(BIN)/python -m pytest -n 2 -q

## Debian's Chromium for the dashboard's browser tests (they skip, saying why, without it).
browser:
	@command -v chromium >/dev/null 2>&1 || ( \
	  (apt-get install -y -qq chromium >/dev/null 2>&1 || \
	   (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)) \
	  || echo "chromium could not be installed: the browser tests will be skipped" )

clean:
	rm -rf $(VENV) var .pytest_cache

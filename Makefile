# The two set-up commands: `make run` starts the stack on the embedded default, `make test`
# installs what is missing and runs the whole suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PROTO_FILES := $(shell find protos -name '*.proto')

.PHONY: install gen lint test run clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

node_modules/.installed: package.json
	npm install --no-audit --no-fund --silent
	touch $@

install: $(VENV)/.installed node_modules/.installed

# Regenerates the Python code of the contracts (never edit gen/ by hand).
gen: $(VENV)/.installed
	$(PY) -m services.protogen gen

lint: install
	node_modules/.bin/buf lint

test: install
	$(PY) -m pytest -p no:cacheprovider -q $(PYTEST_ARGS)

run: $(VENV)/.installed
	$(PY) -m services.stack

clean:
	rm -rf $(VENV) node_modules var

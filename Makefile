# Two commands do all the set-up: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.sense-installed
EXTRAS ?= dev,demo,faiss,analysis,dual,summarization,zerost,serve
# Test processes (pytest-xdist); each test file runs whole in one of them, in the
# order tests/conftest.py gives (files with slow tests first: the workers end together).
TEST_WORKERS ?= 2
# Some shells set it; without cached bytecode every process (each test worker,
# each recipe run) recompiles torch and transformers: about 15 s per start.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: install test demo lint bench mutation clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip uv

# Reinstall whenever the dependency list changes.
$(STAMP): pyproject.toml | $(PY)
	$(VENV)/bin/uv pip install --python $(PY) -e ".[$(EXTRAS)]" \
		|| $(PY) -m pip install -e ".[$(EXTRAS)]"
	touch $(STAMP)

install: $(STAMP)

test: install
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

demo: install
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(PY) -m sense.demo

lint: install
	$(VENV)/bin/ruff check sense recipes tests benchmarks
	$(VENV)/bin/ruff format --check sense recipes tests benchmarks
	$(VENV)/bin/lint-imports

bench: install
	HF_HUB_OFFLINE=1 $(PY) -m benchmarks

# Mutation testing (mutmut) of the modules whose output is a number or a decision, each
# with its own fast tests; not part of `make test` (about 20 min on 2 cores), see
# docs/mutation.md. MUTATION_GROUPS=slu bleu runs only those groups.
MUTATION_GROUPS ?=
mutation: install
	nice -n 10 $(PY) tools/mutation.py $(MUTATION_GROUPS)

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info mutants

# Two commands do all set-up on a fresh machine:
#   make demo   build quick WMH phantoms, train ACE and naive CE briefly, segment a test case
#   make test   install what the tests need (local .venv) and run ruff and the test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.ace-installed
DEMO_OUT ?= demo_output

.PHONY: test demo lint install clean bench

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt "torch==2.13.0"
	$(PY) -m pip install -q -c constraints.txt -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(PY) -m ruff check ACELib ACESegmentation Testing benchmarks
	bash .ci/compile_check.sh

test: $(STAMP) lint
	$(PY) -m pytest -q Testing

demo: $(STAMP)
	$(PY) -m ACELib.cli.main demo --output $(DEMO_OUT)

bench: $(STAMP)
	$(PY) benchmarks/inference.py
	$(PY) benchmarks/training.py
	$(PY) benchmarks/loading.py

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache .ruff_cache

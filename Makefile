# Two commands for a newcomer (each creates the virtual environment when missing):
#   make demo   set up, then run the main job: quick marine-hard datasets, a short HyGen run,
#               and the zero-shot win-rate table
#   make test   set up, then run the test suite
#
# Torch: `pip install torch==2.13.0` takes a local CPU wheel where one is provided; users
# with GPUs install their own torch into the venv first (or set TORCH=...), and an
# existing torch is kept.

PYTHON ?= python3
VENV   ?= .venv
TORCH  ?= torch==2.13.0
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.hygen-installed

.PHONY: setup demo test lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[dev]"
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/hygen demo --run_dir runs/demo

# pytest exits 5 when it collects nothing: not a failure here.
test: $(STAMP)
	@$(PY) -m pytest -q -ra; rc=$$?; if [ $$rc -eq 5 ]; then rc=0; fi; exit $$rc

lint: $(STAMP)
	$(VENV)/bin/ruff check hygen tests benchmarks

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache

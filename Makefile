# nmcfem: every target builds .venv from nothing when it is missing or older than pyproject.toml.
PYTHON ?= $(shell command -v python3.12 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
MPIEXEC := $(VENV)/bin/mpiexec
STAMP := $(VENV)/.installed
CONFIG ?= configs/default.yaml
NP ?= 2

.PHONY: run test test-fast test-serial test-mpi lint bench venv clean-venv

run: $(STAMP)  ## build the default mesh, run the default simulation and its analysis (2 ranks)
	$(MPIEXEC) -n $(NP) $(PY) run_sim.py run $(CONFIG)

test: $(STAMP)  ## full suite: serial, then the MPI tests under mpiexec -n 2
	$(MAKE) --no-print-directory test-serial test-mpi

test-fast: $(STAMP)  ## unit and law tests, no simulation runs (under 2 minutes)
	$(PY) -m pytest -q tests --ignore=tests/mpi -m "not slow"

test-serial: $(STAMP)
	$(PY) -m pytest -q tests --ignore=tests/mpi

test-mpi: $(STAMP)
	$(MPIEXEC) -n $(NP) $(PY) -m pytest -q -p no:cacheprovider tests/mpi

lint: $(STAMP)  ## ruff: pyflakes, pycodestyle, import order, docstrings (pyproject.toml)
	$(PY) -m ruff check .

bench: $(STAMP)  ## speed and memory benchmarks (not part of the tests)
	$(PY) benchmarks/run_all.py

venv: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else "nmcfem needs Python >= 3.12; found " + sys.version.split()[0])'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

clean-venv:
	rm -rf $(VENV)

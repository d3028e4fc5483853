# Two commands for a fresh clone:  `make demo` (whole pipeline, embedded default, CPU)
# and `make test` (the test suite). Both create .venv when it is missing.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORES ?= 2

.PHONY: demo test test-all venv clean lint paper-dryrun bench

# A new .venv holds about 7 GiB (torch's CUDA wheel from PyPI, its nvidia libraries and triton):
# check the disk first rather than fail half-way through pip with "No space left on device".
VENV_GIB ?= 8

$(BIN)/come: requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PY) come/utils/diskspace.py $(VENV) $(VENV_GIB) "a new Python environment ($(VENV), torch and the pinned requirements)"
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements.txt
	$(BIN)/pip install -q --disable-pip-version-check --no-deps -e .
	touch $(BIN)/come

venv: $(BIN)/come

demo: venv
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/snakemake all --cores $(CORES) --configfile config/config.yaml

test: venv
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python -m pytest -m "not slow and not slurm" tests

test-all: venv
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python -m pytest tests

lint: venv
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/snakemake --lint --configfile config/config.yaml

paper-dryrun: venv
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/snakemake all -n --configfile config/paper.yaml

bench: venv
	PATH=$(abspath $(BIN)):$$PATH sh -c 'for b in benchmarks/bench_*.py; do $(BIN)/python $$b; done'

clean:
	rm -rf results/* .snakemake && touch results/.gitkeep

# Two commands do all set-up: `make reproduce` and `make test`.
# Each creates .venv when missing; the install step is skipped when .venv/.installed is newer
# than requirements.txt and pyproject.toml.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Keep Jupyter/IPython/matplotlib state inside the checkout (CI machines have no home config).
export JUPYTER_RUNTIME_DIR := $(CURDIR)/.jupyter/runtime
export JUPYTER_DATA_DIR := $(CURDIR)/.jupyter/data
export JUPYTER_CONFIG_DIR := $(CURDIR)/.jupyter/config
export IPYTHONDIR := $(CURDIR)/.jupyter/ipython
export MPLCONFIGDIR := $(CURDIR)/.jupyter/mpl
export MPLBACKEND := Agg
export PYTHONHASHSEED := 0

.PHONY: env test reproduce bench pair

env: $(STAMP)

$(STAMP): requirements.txt pyproject.toml binder/overrides.json
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch first: sam2 builds against it without build isolation (see README, "Install").
	$(BIN)/pip install torch==2.14.1 torchvision==0.29.1
	SAM2_BUILD_CUDA=0 $(BIN)/pip install --no-build-isolation -r requirements.txt
	$(BIN)/pip install --no-build-isolation --no-deps -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (uncertsam)" >/dev/null
	# JupyterLab opens the jupytext .py notebooks as notebooks (binder/postBuild installs the same file).
	mkdir -p $(VENV)/share/jupyter/lab/settings
	cp binder/overrides.json $(VENV)/share/jupyter/lab/settings/overrides.json
	touch $(STAMP)

# Unit tests, the paper profile end to end on CPU (official Hiera-T with random weights on a
# generated benchmark, every notebook, a 2-process torchrun evaluation compared byte for byte with one
# process; tests/paper_smoke.py), then every notebook executed by nbval with the smoke profile
# (outputs go to build/smoke/outputs, never over the committed figures/ and tables/).
test: $(STAMP)
	$(BIN)/python -m pytest -q tests
	$(BIN)/python -m pytest -q tests/paper_smoke.py
	$(BIN)/uncertsam reproduce --profile smoke --prepare-only --build-dir build/smoke
	UNCERTSAM_OUTPUTS=$(CURDIR)/build/smoke/outputs $(BIN)/python -m pytest -q -p no:cacheprovider \
		--nbval-lax --nbval-current-env --nbval-sanitize-with params/nbval_sanitize.cfg build/smoke/*.ipynb

reproduce: $(STAMP)
	$(BIN)/uncertsam reproduce

bench: $(STAMP)
	$(BIN)/uncertsam bench core

# Regenerate the .ipynb pairs of the jupytext sources (never edit the .ipynb by hand); --update keeps
# the ids of unchanged cells, so a notebook whose source did not change is rewritten byte-identical.
pair: $(STAMP)
	$(BIN)/jupytext --update --to ipynb notebooks/[0-9][0-9]_*.py

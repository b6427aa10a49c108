# The two commands of the quick start: `make report` and `make test`.
# Both create .venv on first use and install the pinned dependencies once;
# the stamp file makes a second call skip the install.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PLOTS  ?= report/plots
JSON   ?= report/report.json
HTML   ?= report/index.html

.PHONY: report test lint bench install clean

report: $(STAMP)
	$(BIN)/crosscheck run --json $(JSON) --plots $(PLOTS) --html $(HTML)

test: $(STAMP) lint
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python -m crosscheck.bench

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -c constraints.txt setuptools
	$(BIN)/python -m pip install -q -c constraints.txt --no-build-isolation --config-settings editable_mode=compat -e '.[frameworks,test]'
	@touch $(STAMP)

clean:
	rm -rf $(VENV) report *.egg-info

# The few verbs a newcomer needs. `make report` installs everything into .venv and renders the
# Lekstroom whitepaper for 2014-2015 on the embedded synthetic data; `make test` runs the tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
REGION ?= lekstroom
SCHOOL_YEAR ?= 2014-2015
DATA := data/synthetic

.PHONY: install report data test lint clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

data: install
	$(BIN)/evaluation data synthetic --out $(DATA)

report: data
	$(BIN)/evaluation render --region $(REGION) --school-year $(SCHOOL_YEAR) --data $(DATA)

test: install
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check evaluation tests

clean:
	rm -rf _output _build $(DATA)

# vidcustom: `make demo` runs the whole pipeline on the tiny preset; `make test` runs the tests.
# Both create the virtual environment and install everything first (CPU torch from its pinned build).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-fast compile mlflow-ui clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first and pinned: 2.13.0 resolves to the CPU build; any other spec pulls CUDA wheels.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/vidcustom run --params params.yaml

test: $(STAMP)
	$(BIN)/pytest -q

test-fast: $(STAMP)
	$(BIN)/pytest -q -m "not slow"

compile: $(STAMP)
	$(BIN)/vidcustom compile

mlflow-ui: $(STAMP)
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/.vidcustom/mlflow.db

clean:
	rm -rf .vidcustom

# vidcustom: `make demo` runs the whole pipeline on the tiny preset; `make test` runs the tests.
# Both create the virtual environment and install everything first (CPU torch from its pinned build).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-fast browser compile mlflow-ui clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first and pinned: 2.13.0 resolves to the CPU build; any other spec pulls CUDA wheels.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/vidcustom run --params params.yaml

# The comparison report is checked in headless Chromium (Debian's package); install it when missing.
browser:
	@command -v chromium >/dev/null 2>&1 || { echo "installing chromium for the report test"; \
	  apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1 || \
	  { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends chromium >/dev/null; } || \
	  echo "could not install chromium (needs root and the Debian mirror): tests/test_compare.py will fail"; }

test: $(STAMP) browser
	$(BIN)/pytest -q

test-fast: $(STAMP) browser
	$(BIN)/pytest -q -m "not slow"

compile: $(STAMP)
	$(BIN)/vidcustom compile

mlflow-ui: $(STAMP)
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/.vidcustom/mlflow.db

clean:
	rm -rf .vidcustom

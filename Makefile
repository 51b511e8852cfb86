# Each target creates .venv with the Python on PATH and installs mailkit into it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test venv clean

$(BIN)/mailkit: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(BIN)/mailkit

venv: $(BIN)/mailkit

demo: venv
	$(BIN)/mailkit demo

test: venv
	MAILKIT_PROGRESS=0 $(BIN)/python -m pytest --nbval-lax -p no:cacheprovider

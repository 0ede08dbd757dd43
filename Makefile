# Rill: `make compile` (sets up .venv on first use) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

EXAMPLE       := examples/tcn/tcn.onnx
EXAMPLE_CALIB := examples/tcn/calib.npy

MODEL   ?= $(EXAMPLE)
TARGET  ?= esp32p4
BITS    ?= 8
OUT     ?= build
CHUNK   ?=
CALIB   ?= $(if $(filter $(EXAMPLE),$(MODEL)),$(EXAMPLE_CALIB),)
OFFLINE ?=
NAME    ?=
ARGS    ?=

.PHONY: compile test fuzz venv example clean help

help:
	@echo "make compile [MODEL=m.onnx] [TARGET=esp32p4|esp32s3] [CHUNK=n] [CALIB=c.npy] [BITS=8] [OUT=build] [OFFLINE=1]"
	@echo "make test     run the test suite"
	@echo "make fuzz     property-based streaming fuzz (RILL_FUZZ=1: many random conv stacks)"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $@

venv: $(STAMP)

$(EXAMPLE) $(EXAMPLE_CALIB): examples/tcn/make_tcn.py $(STAMP)
	$(BIN)/python examples/tcn/make_tcn.py --out examples/tcn

example: $(EXAMPLE)

compile: $(STAMP) $(if $(filter $(EXAMPLE),$(MODEL)),$(EXAMPLE) $(EXAMPLE_CALIB))
	$(BIN)/python -m compiler compile $(MODEL) --target $(TARGET) --bits $(BITS) --out $(OUT) --force \
		$(if $(CHUNK),--chunk $(CHUNK)) $(if $(CALIB),--calib $(CALIB)) \
		$(if $(OFFLINE),--offline) $(if $(NAME),--name $(NAME)) $(ARGS)

test: $(STAMP) $(EXAMPLE) $(EXAMPLE_CALIB)
	$(BIN)/python -m pytest -n 2 tests

fuzz: $(STAMP)
	RILL_FUZZ=1 $(BIN)/python -m pytest -n 2 tests/test_streaming_fuzz.py

clean:
	rm -rf $(OUT) .pytest_cache

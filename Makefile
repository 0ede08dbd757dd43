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
# the example's calibration data, unless BITS=32 (float32 needs none)
CALIB   ?= $(if $(filter $(EXAMPLE),$(MODEL)),$(if $(filter 32,$(BITS)),,$(EXAMPLE_CALIB)),)
OFFLINE ?=
NAME    ?=
ARGS    ?=

.PHONY: compile test fuzz op-matrix venv example clean help bench bench-memory

help:
	@echo "make compile [MODEL=m.onnx] [TARGET=esp32p4|esp32s3] [CHUNK=n] [CALIB=c.npy] [BITS=8|16|32] [OUT=build] [OFFLINE=1]"
	@echo "             BITS=32: float32, no quantization and no calibration"
	@echo "make test     run the test suite"
	@echo "make fuzz     property-based fuzz (RILL_FUZZ=1): many random conv stacks streamed, many mutated models compiled"
	@echo "make op-matrix  every op of issue 5 compiled and verified in int8, int16 and float32 (RILL_OP_MATRIX=1)"
	@echo "make bench        RV32IMAFC instructions per MAC of the kernels and example models vs a plain-loop reference (bench/results.json)"
	@echo "make bench-memory arena vs its lower bound and bytes copied per call, every example/test model (int8/int16)"
	@echo "make bench-quant  output SNR of Rill vs ESP-PPQ (int8/int16, esp32p4/esp32s3; ESP-PPQ in .venv-ppq)"

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
	RILL_FUZZ=1 $(BIN)/python -m pytest -n 2 tests/test_streaming_fuzz.py tests/test_mutation_fuzz.py

op-matrix: $(STAMP)
	RILL_OP_MATRIX=1 $(BIN)/python -m pytest -n 2 tests/test_op_matrix.py

# Instructions per MAC on the ESP32-P4's base ISA (RV32IMAFC in the unicorn emulator) of the int8
# kernel families on realistic shapes and of the example models per chunk, against plain-loop
# reference kernels, streaming vs offline per frame; the issue's goals beside them
# (bench/rv32/bench_rv32.py; writes bench/results.json; a benchmark, not a test). Needs
# gcc-riscv64-unknown-elf and picolibc-riscv64-unknown-elf (.ci/run installs them).
bench: $(STAMP)
	$(BIN)/python bench/rv32/bench_rv32.py $(ARGS)

# Arena bytes vs the lower bound, state and instance bytes, copies and MACs per call of every
# example and test model at int8 and int16 (bench/memory/bench_memory.py; a table, not a test).
bench-memory: $(STAMP)
	$(BIN)/python bench/memory/bench_memory.py $(ARGS)

clean:
	rm -rf $(OUT) .pytest_cache

# ---------------------------------------------------------------- bench-quant
# Output SNR of Rill vs ESP-PPQ on three example models (bench/quant/bench_quant.py; writes
# bench/results_quant.json). ESP-PPQ runs in its own venv, .venv-ppq, set up once: the torch
# CPU wheel (from /opt/wheels when present, else PyTorch's CPU index; never the CUDA build),
# then esp-ppq with onnx<1.20. When that fails, .venv-ppq/.unavailable says why and the bench
# runs Rill alone; `rm -rf .venv-ppq` to try again.
PPQ_VENV        := .venv-ppq
PPQ_STAMP       := $(PPQ_VENV)/.installed
PPQ_VERSION     ?= 1.3.12
TORCH_VERSION   ?= 2.13.0
TORCH_WHEEL     ?= $(firstword $(wildcard /opt/wheels/torch-$(TORCH_VERSION)+cpu-*.whl))
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
PPQ_PIP         := $(PPQ_VENV)/bin/pip install --quiet --disable-pip-version-check

.PHONY: bench-quant venv-ppq

$(PPQ_STAMP):
	@rm -rf $(PPQ_VENV); mkdir -p $(PPQ_VENV)
	@echo "setting up $(PPQ_VENV) for ESP-PPQ (torch CPU + esp-ppq==$(PPQ_VERSION), once)"
	@( $(PYTHON) -m venv $(PPQ_VENV) \
	  && $(PPQ_PIP) --upgrade pip \
	  && $(if $(TORCH_WHEEL),$(PPQ_PIP) '$(TORCH_WHEEL)',$(PPQ_PIP) --index-url $(TORCH_CPU_INDEX) 'torch==$(TORCH_VERSION)') \
	  && $(PPQ_PIP) 'esp-ppq==$(PPQ_VERSION)' 'onnx<1.20' onnxruntime numpy \
	  && $(PPQ_VENV)/bin/python -c 'import esp_ppq, torch, onnx, onnxruntime' \
	) > $(PPQ_VENV)/install.log 2>&1 \
	  || { tail -n 5 $(PPQ_VENV)/install.log > $(PPQ_VENV)/.unavailable; \
	       echo "NOTE: ESP-PPQ could not be installed (see $(PPQ_VENV)/install.log); the bench runs Rill alone. rm -rf $(PPQ_VENV) to retry."; }
	@touch $@

venv-ppq: $(PPQ_STAMP)

bench-quant: $(STAMP) $(PPQ_STAMP)
	$(BIN)/python bench/quant/bench_quant.py --ppq-python $(PPQ_VENV)/bin/python $(ARGS)

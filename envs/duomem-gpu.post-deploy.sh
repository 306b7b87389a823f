#!/usr/bin/env bash
# Snakemake runs this inside the new environment right after creating it. Relative paths in the
# YAML's pip section would resolve against Snakemake's copy of it in .snakemake/conda/, so this
# checkout is installed from here: the workflow exports DUOMEM_REPO (rules/common.smk). vllm (and
# its CUDA torch) is already in place, so pip keeps them and adds peft, trl, alfworld, ...
set -euo pipefail
: "${DUOMEM_REPO:?DUOMEM_REPO is unset: create this environment with snakemake --sdm conda}"
python -m pip install --no-input -c "$DUOMEM_REPO/requirements/gpu.lock" --editable "${DUOMEM_REPO}[gpu]"

"""What made a results file: package versions, parameters, data checksums."""

import platform
from importlib import metadata

PACKAGES = ("duomem", "torch", "transformers", "peft", "trl", "alfworld", "textworld", "vllm", "openai",
            "snakemake")


def package_versions(packages=PACKAGES):
    out = {}
    for p in packages:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            pass
    return out


def provenance(**fields):
    return {"versions": package_versions(), "python": platform.python_version(), **fields}

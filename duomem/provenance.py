"""What made a results file: package versions, parameters, data checksums.

Every Snakemake job that runs through `duomem.cli.run` gets one sidecar, `<first output>.provenance.json`
(beside the output; beside the folder for a directory output), written by `write_job_provenance` once
the job succeeded. It holds the rule, its wildcards and every parameter it was given (the config
values it used), checksums of its inputs, its outputs, package versions and a checksum of duomem's own
code, the model and adapter, the data splits with checksums of their game lists and the step limit.
Data splits and the step limit are carried over from the inputs' sidecars, so a LoRA adapter names the
train split its teacher trajectories came from. Nothing time-dependent goes in: two runs of the same
job write the same sidecar (timings are in results/benchmarks/).
"""

import hashlib
import json
import platform
from importlib import metadata
from pathlib import Path

PACKAGES = ("duomem", "torch", "transformers", "peft", "trl", "alfworld", "textworld", "vllm", "openai",
            "sentence-transformers", "snakemake")
SIDECAR_SUFFIX = ".provenance.json"
HASH_LIMIT = 64 << 20  # larger files (model weights) are recorded by name and size only


def package_versions(packages=PACKAGES):
    out = {}
    for p in packages:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            pass
    return out


def code_checksum():
    """sha256 (16 hex) of duomem's source: the package version does not change with every edit."""
    h = hashlib.sha256()
    root = Path(__file__).parent
    for f in sorted(root.rglob("*.py")):
        h.update(f.relative_to(root).as_posix().encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:16]


def provenance(**fields):
    return {"versions": package_versions(), "python": platform.python_version(), **fields}


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def digest(path):
    """{bytes, sha256} of a file; for a folder, {files, bytes, sha256} over its names, sizes and the
    contents of every file up to HASH_LIMIT (larger ones count by name and size)."""
    p = Path(path)
    if p.is_dir():
        h, total, files = hashlib.sha256(), 0, sorted(f for f in p.rglob("*") if f.is_file())
        for f in files:
            size = f.stat().st_size
            total += size
            h.update(f"{f.relative_to(p).as_posix()}\0{size}\0".encode())
            if size <= HASH_LIMIT:
                h.update(sha256_file(f).encode())
        return {"files": len(files), "bytes": total, "sha256": h.hexdigest()}
    if not p.exists():
        return {"missing": True}
    size = p.stat().st_size
    return {"bytes": size, "sha256": sha256_file(p) if size <= HASH_LIMIT else None}


def sidecar_path(output):
    return Path(str(output).rstrip("/") + SIDECAR_SUFFIX)


def find_sidecar(path):
    """The sidecar of the job that made `path` (its first output or one of the others), or None."""
    path = Path(path)
    own = sidecar_path(path)
    if own.exists():
        return own
    if path.parent.is_dir():
        for s in sorted(path.parent.glob(f"*{SIDECAR_SUFFIX}")):
            try:
                if str(path) in json.loads(s.read_text()).get("outputs", []):
                    return s
            except (OSError, ValueError):
                continue
    return None


def manifest_info(path):
    """Split, game count and game-list checksum of a task manifest (results/data/{split}.jsonl)."""
    from .data import manifest_checksum
    from .io import read_jsonl

    records = read_jsonl(path)
    return {"manifest": str(path), "games": len(records), "game_list_sha256_16": manifest_checksum(records)}


def _is_manifest(path):
    p = Path(path)
    return p.suffix == ".jsonl" and p.parent.name == "data" and p.stem in ("train", "valid_seen", "valid_unseen")


def job_record(job, extra=None):
    """The provenance of a Snakemake job (the `snakemake` object of a script) after it ran."""
    params = {k: v for k, v in job.params.items()}
    wildcards = {k: v for k, v in job.wildcards.items()}
    names = {}
    for k, v in job.input.items():  # a named input is a path or a list of paths
        for path in [v] if isinstance(v, str) else v:
            names[str(path)] = k
    inputs, data, upstream, max_steps = [], {}, {}, params.get("max_steps")
    extra = dict(extra or {})
    for path in list(job.input) + list(extra.pop("extra_inputs", [])):
        inputs.append({"name": names.get(str(path)), "path": str(path), **digest(path)})
        if _is_manifest(path):
            data[Path(path).stem] = manifest_info(path)
            continue
        sidecar = find_sidecar(path)
        if sidecar is not None:  # carry the data splits and the step limit over from upstream
            up = json.loads(sidecar.read_text())
            upstream[str(path)] = str(sidecar)
            for split, info in up.get("data", {}).items():
                data.setdefault(split, info)
            if max_steps is None:
                max_steps = up.get("max_steps")
    outputs = [str(o) for o in job.output]
    for path in outputs:
        if _is_manifest(path) and Path(path).exists():
            data[Path(path).stem] = manifest_info(path)
    model = {}
    if "model" in wildcards:
        model = {"name": wildcards["model"], "backend": params.get("backend"), "path": params.get("path"),
                 "adapter": wildcards.get("adapter")}
    record = provenance(
        rule=job.rule, wildcards=wildcards, params=params, threads=job.threads, inputs=inputs, outputs=outputs,
        model=model, data=data, max_steps=max_steps, upstream=upstream, duomem_code_sha256_16=code_checksum())
    for k, v in extra.items():  # what the script learned while running (e.g. the selected adapter)
        record[k] = {**record[k], **v} if isinstance(record.get(k), dict) and isinstance(v, dict) else v
    return record


def write_job_provenance(job, extra=None):
    """Write the job's sidecar beside its first output; return its path."""
    from .io import write_text_atomic

    path = sidecar_path(job.output[0])
    write_text_atomic(path, json.dumps(job_record(job, extra), indent=2, sort_keys=True, default=str) + "\n")
    return path

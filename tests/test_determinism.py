"""Two runs of the smoke config give the same files, timing fields apart.

The shared smoke run is the first run. The second runs in a fresh folder and builds one job of every
kind (manifests, the tiny model, teacher collection, both memory banks, embeddings, one evaluation
per policy kind with retrieval and a reference trajectory, the SFT file, one LoRA adapter, a table);
every file it makes is compared with the smoke run's.

Fields left out, because they measure time and nothing else: `seconds`, `started_at`, `ended_at`
(episodes, trajectories, train_summary.json), `tokens_per_second` (train_summary.json), `mean_seconds`, `tasks_per_hour` (summary.csv,
provenance.json) and Trainer's
`train_runtime` / `train_samples_per_second` / `train_steps_per_second` (trainer_log.json). Logs and
benchmark files are not compared. Provenance sidecars are compared whole, except the checksums of
input files that themselves hold timing fields (they differ exactly because the timings do).
"""

import csv
import json
import shutil

import numpy as np

from conftest import REPO, job_counts, snakemake

CONFIG = str(REPO / "config" / "smoke.yaml")
TIMING = {"seconds", "mean_seconds", "train_runtime", "train_samples_per_second", "train_steps_per_second",
          "started_at", "ended_at", "tasks_per_hour", "peak_gpu_memory_mb", "tokens_per_second"}
SMOLLM2 = "results/models/smollm2-135m-instruct"
TARGETS = [
    "results/data/train.jsonl",
    "results/data/valid_unseen.jsonl",
    "results/trajectories/expert/train.jsonl",
    "results/memory/expert/memories.json",  # the oracle's key-step bank
    "results/memory/tiny-random/memories.json",  # an LLM's own bank
    "results/eval/valid_unseen/tiny-random/base/memp-cd-k2/summary.csv",  # hf: retrieval + reference
    "results/eval/valid_unseen/expert/base/none/summary.csv",  # the expert backend
    "results/sft/expert/full.jsonl",
    "results/lora/tiny-random/full/r2_lr1e-03",
    "results/table6.csv",
]


def strip(obj):
    if isinstance(obj, dict):
        return {k: strip(v) for k, v in obj.items() if k not in TIMING}
    if isinstance(obj, list):
        return [strip(v) for v in obj]
    return obj


def content(path, identical):
    """A file's content for comparison, timing fields removed."""
    if path.suffix == ".jsonl":
        return [strip(json.loads(line)) for line in path.read_text().splitlines()]
    if path.suffix == ".csv":
        return [strip(row) for row in csv.DictReader(open(path))]
    if path.suffix == ".npy":
        return np.load(path).tolist()
    if path.name.endswith(".provenance.json"):
        record = json.loads(path.read_text())
        record.pop("duomem_code_sha256_16")  # differs only where the code was edited after the smoke run
        for i in record["inputs"]:
            if i["path"] not in identical:
                i.pop("sha256", None), i.pop("bytes", None)
        return record
    if path.suffix == ".json":
        return strip(json.loads(path.read_text()))
    return path.read_bytes()


def same_bytes(a, b):
    if a.is_dir():
        files = sorted(f.relative_to(a) for f in a.rglob("*") if f.is_file())
        return files == sorted(f.relative_to(b) for f in b.rglob("*") if f.is_file()) and all(
            same_bytes(a / f, b / f) for f in files)
    return a.read_bytes() == b.read_bytes()


def test_a_second_run_gives_the_same_files(smoke_run, tmp_path):
    run2 = tmp_path / "run2"
    # The GGUF conversion is the one job left out (20 s, no randomness): its output is copied.
    shutil.copytree(smoke_run / SMOLLM2, run2 / SMOLLM2)
    shutil.copy2(smoke_run / f"{SMOLLM2}.provenance.json", run2 / f"{SMOLLM2}.provenance.json")
    planned = job_counts(snakemake("-n", *TARGETS, "--configfile", CONFIG, workdir=run2).stdout)
    assert "smollm2_from_gguf" not in planned
    assert {"manifest", "tiny_random_model", "collect_trajectories", "extract_memories", "embed_memories",
            "embed_tasks", "evaluate", "build_sft", "train_lora", "table6"} == set(planned) - {"total"}
    snakemake(*TARGETS, "-c2", "--configfile", CONFIG, workdir=run2, timeout=1200)

    made = sorted(p for p in (run2 / "results").rglob("*") if p.is_file()
                  and not p.relative_to(run2).parts[1] in ("logs", "benchmarks")
                  and not p.relative_to(run2).as_posix().startswith(SMOLLM2))
    rel = [p.relative_to(run2) for p in made]
    assert len(rel) >= 30 and not [r for r in rel if not (smoke_run / r).exists()]
    # inputs whose bytes are the same in both runs must carry the same checksum in the sidecars
    inputs = {i["path"] for r in rel if r.name.endswith(".provenance.json")
              for i in json.loads((run2 / r).read_text())["inputs"]}
    identical = {i for i in inputs if same_bytes(run2 / i, smoke_run / i)}
    differ = [r.as_posix() for r in rel if content(run2 / r, identical) != content(smoke_run / r, identical)]
    assert differ == []
    # what is byte-identical outright: everything without a timing field in it (or in its inputs)
    timed = {r.as_posix() for r in rel if not same_bytes(run2 / r, smoke_run / r)}
    assert {t.split("/")[-1] for t in timed} <= {
        "episodes.jsonl", "summary.csv", "provenance.json", "train.jsonl", "train_summary.json",
        "trainer_log.json", "episodes.jsonl.provenance.json", "memories.json.provenance.json",
        "full.jsonl.provenance.json", "r2_lr1e-03.provenance.json", "table6.csv.provenance.json"}, timed

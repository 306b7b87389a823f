"""Every results file says what made it: a per-job sidecar `<first output>.provenance.json`."""

import json
from pathlib import Path

from conftest import REPO, snakemake
from duomem.provenance import SIDECAR_SUFFIX, digest

CONFIG = str(REPO / "config" / "smoke.yaml")
VERSIONS = {"duomem", "torch", "transformers", "peft", "alfworld"}
DOWNSTREAM_OF_GAMES = {"manifest", "collect_trajectories", "extract_memories", "embed_memories", "embed_tasks",
                       "evaluate", "build_sft", "train_lora", "select_adapter", "select_strategy_adapter",
                       "table1", "table6"}


def sidecars(workdir):
    return {p.relative_to(workdir).as_posix()[:-len(SIDECAR_SUFFIX)]: json.loads(p.read_text())
            for p in (workdir / "results").rglob(f"*{SIDECAR_SUFFIX}")}


def covering(rel, records):
    """The sidecar of the job whose outputs hold `rel` (a file, or a file inside a folder output)."""
    for record in records.values():
        for out in record["outputs"]:
            if rel == out or rel.startswith(out.rstrip("/") + "/"):
                return record
    return None


def test_every_results_file_has_provenance(smoke_run):
    records = sidecars(smoke_run)
    files = [p.relative_to(smoke_run).as_posix() for p in (smoke_run / "results").rglob("*")
             if p.is_file() and not p.name.endswith(SIDECAR_SUFFIX) and p.name != ".snakemake_timestamp"
             and p.relative_to(smoke_run).parts[1] not in ("logs", "benchmarks")]
    assert len(files) > 50
    assert [f for f in files if covering(f, records) is None] == []
    rules = set()
    for first, r in records.items():
        rules.add(r["rule"])
        assert r["outputs"][0] == first and VERSIONS <= set(r["versions"]) and r["duomem_code_sha256_16"]
        for i in r["inputs"]:  # the checksums are those of the inputs as they are
            assert {k: v for k, v in digest(smoke_run / i["path"]).items()} == \
                   {k: i[k] for k in ("bytes", "sha256", "files") if k in i}, (first, i["path"])
        if r["rule"] in DOWNSTREAM_OF_GAMES:
            assert r["data"], first  # they name the split(s) their games came from
        for split, d in r["data"].items():
            assert d["games"] == 6 and len(d["game_list_sha256_16"]) == 16
    assert {"manifest", "collect_trajectories", "extract_memories", "embed_memories", "embed_tasks", "evaluate",
            "build_sft", "train_lora", "select_adapter", "tiny_random_model", "smollm2_from_gguf"} <= rules


def test_evaluation_names_model_adapter_split_and_step_limit(smoke_run):
    records = sidecars(smoke_run)
    base = records["results/eval/valid_unseen/tiny-random/base/none/episodes.jsonl"]
    assert base["max_steps"] == 8 and base["params"]["max_steps"] == 8
    assert base["model"]["name"] == "tiny-random" and base["model"]["path"] == "results/models/tiny-random-smollm2"
    assert base["model"]["adapter"] == "base" and base["model"]["adapter_path"] is None
    assert list(base["data"]) == ["valid_unseen"]
    lora = records["results/eval/valid_unseen/tiny-random/lora/memp-cd-k2/episodes.jsonl"]
    selected = json.loads((smoke_run / "results/lora/tiny-random/selected.json").read_text())
    assert lora["model"]["adapter"] == "lora" and lora["model"]["adapter_path"] == selected["adapter"]
    adapter_input = next(i for i in lora["inputs"] if i["path"] == selected["adapter"])
    assert adapter_input["sha256"] == digest(smoke_run / selected["adapter"])["sha256"]
    # an adapter names the train split its teacher trajectories came from and their step limit (the
    # collection's 30, not the evaluations' 8)
    adapter = records["results/lora/tiny-random/full/r2_lr1e-03"]
    assert list(adapter["data"]) == ["train"] and adapter["max_steps"] == 30
    assert adapter["upstream"]["results/sft/expert/full.jsonl"] == "results/sft/expert/full.jsonl" + SIDECAR_SUFFIX


def test_two_values_of_one_parameter_say_so(smoke_run, tmp_path):
    records = sidecars(smoke_run)
    a, b = (records[f"results/lora/tiny-random/full/r2_lr{lr}"] for lr in ("1e-03", "1e-02"))
    assert a["wildcards"]["lr"] == "1e-03" and b["wildcards"]["lr"] == "1e-02"
    assert a["params"] == b["params"] and a["inputs"] == b["inputs"]
    # a config value: the seed picks the subset of games, and both sidecars say so
    made = []
    for seed in (0, 1):
        workdir = tmp_path / f"seed{seed}"
        workdir.mkdir()
        snakemake("results/data/valid_seen.jsonl", "-c1", "--configfile", CONFIG, "--config", f"seed={seed}",
                  workdir=workdir)
        made.append(json.loads((workdir / "results/data/valid_seen.jsonl.provenance.json").read_text()))
    s0, s1 = made
    assert s0["params"]["seed"] == 0 and s1["params"]["seed"] == 1
    assert s0["data"]["valid_seen"]["game_list_sha256_16"] != s1["data"]["valid_seen"]["game_list_sha256_16"]
    same = {k for k in s0 if s0[k] == s1[k]}
    assert set(s0) - same == {"params", "data"}
    assert {k for k in s0["params"] if s0["params"][k] != s1["params"][k]} == {"seed"}


def test_a_failed_job_leaves_no_sidecar(tmp_path):
    from types import SimpleNamespace

    import pytest

    from duomem.cli import run
    from duomem.data import DataError

    out = tmp_path / "out.json"
    stale = Path(str(out) + SIDECAR_SUFFIX)
    stale.write_text("{}")  # from an earlier run: it must not survive to describe this one
    job = SimpleNamespace(output=[str(out)])

    def fail():
        raise DataError("no data")

    with pytest.raises(SystemExit):
        run(fail, job=job)
    assert not stale.exists()

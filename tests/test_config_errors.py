"""Bad configs are rejected before any job runs, with ONE line naming the key and its allowed values."""

import json

import pytest
import yaml

from conftest import REPO, snakemake
from duomem.config_check import ConfigError, check_all, check_duplicate_keys

SMOKE = REPO / "config" / "smoke.yaml"
SCHEMA = REPO / "schemas" / "config.schema.yaml"

# (id, overlay on the smoke config, the key the message must name, text its allowed values must hold)
BAD = [
    ("unknown-model-key", "models:\n  tiny-random:\n    pth: x\n", "models.tiny-random.pth", "backend, path"),
    ("student-not-a-model", "students: [tiny-randm]\n", "students", "expert, tiny-random"),
    ("teacher-not-a-model", "teacher: nobody\n", "teacher", "expert, tiny-random"),
    ("collection-steps-not-a-number", "teacher_collection:\n  max_steps: many\n", "teacher_collection.max_steps",
     "an integer >= 1 (null: the default)"),
    ("collector-not-a-model", "teacher_collection:\n  collector: nobody\n", "teacher_collection.collector",
     "expert, tiny-random"),
    ("rank-0", "lora:\n  ranks: [0]\n", "lora.ranks[0]", "an integer >= 1"),
    ("negative-lr", "lora:\n  lrs: [-1.0e-5]\n", "lora.lrs[0]", "a number > 0"),
    ("non-numeric-lr", "lora:\n  lrs: [fast]\n", "lora.lrs[0]", "a number > 0"),
    ("lr-read-as-text", "lora:\n  lrs: [1e-4]\n", "lora.lrs[0]", "a number > 0"),  # says: write 1.0e-4
    # smoke: 1 train game per type x 1 attempt = at most 6 scripts in the bank
    ("k-above-bank", "memory:\n  k: 7\n", "memory.k", "1 to 6"),
    ("k-ablation-above-bank", "memory:\n  k_ablation: [2, 50]\n", "memory.k_ablation", "1 to 6"),
    ("unknown-memory-configuration", "evaluation:\n  memory: [none, everything]\n", "evaluation.memory[1]",
     "none, script, trajectory, memp"),
    ("unknown-backend", "models:\n  tiny-random:\n    backend: llamacpp\n", "models.tiny-random.backend",
     "hf, vllm, openai, expert"),
    ("openai-without-url", "models:\n  api:\n    backend: openai\n    path: Qwen/Qwen2.5-72B-Instruct\n",
     "models.api.base_url", "http"),
    ("url-not-a-url", "models:\n  api:\n    backend: openai\n    path: q\n    base_url: localhost:8000\n",
     "models.api.base_url", "http"),
    ("step-limit-0", "max_steps: 0\n", "max_steps", "an integer >= 1"),
    ("unknown-split", "evaluation:\n  splits: [test]\n", "evaluation.splits[0]", "train, valid_seen, valid_unseen"),
    ("missing-local-model", "models:\n  tiny-random:\n    path: /nonexistent/models/qwen3-4b\n",
     "models.tiny-random.path", "a hub id (org/name), an existing local folder"),
    ("thinking-on-a-model-without-it", "models:\n  tiny-random:\n    thinking: true\n", "models.tiny-random.thinking",
     "remove the key"),
    ("unknown-top-level-key", "max_step: 30\n", "max_step", "alfworld_data, seed, max_steps"),
    ("unknown-embedder", "memory:\n  embedder: bert\n", "memory.embedder", "minilm, openai-3-small"),
    ("wrong-type", "generation:\n  batch_size: four\n", "generation.batch_size", "an integer >= 1"),
    ("expert-gets-no-adapter", "lora:\n  models: [expert]\n", "lora.models", "tiny-random"),
    ("unknown-strategy", "lora:\n  strategy: everything\n", "lora.strategy", "full, latest, last5"),
    ("negative-seed", "seed: -1\n", "seed", "an integer >= 0"),
    ("top-layers-0", "lora:\n  top_layers: 0\n", "lora.top_layers", "an integer >= 1"),
    ("dropout-above-0.9", "lora:\n  dropout: 1.5\n", "lora.dropout", "0.9"),
    ("mistake-rate-above-0.5", "teacher_collection:\n  mistake_rate: 0.8\n", "teacher_collection.mistake_rate",
     "0.5"),
    ("unknown-expert-search", "models:\n  expert:\n    backend: expert\n    search: random\n",
     "models.expert.search", "alfworld, descending"),
    ("search-on-a-model-without-it", "models:\n  tiny-random:\n    search: descending\n",
     "models.tiny-random.search", "remove the key"),
    ("unknown-sft-memory", "lora:\n  sft_memory: [none, memp-teacher-k3]\n", "lora.sft_memory[1]", "memp"),
    ("sft-memory-with-reference", "lora:\n  with_reference: true\n  sft_memory: [none, memp-cd-k1]\n",
     "lora.with_reference", "trajectory"),
    ("adapter-memory-not-evaluated", "lora:\n  eval_memories: [memp-self-k5]\n", "lora.eval_memories",
     "none, script-self-k2"),
    ("sft-memory-k-above-bank", "lora:\n  sft_memory: [memp-cd-k99999]\n", "lora.sft_memory", "k from 1 to"),
]

# PyYAML keeps the last of two equal keys without a word: a whole file with the model defined twice.
DUPLICATE = SMOKE.read_text().replace(
    "teacher: expert", "  tiny-random:\n    backend: hf\n    path: results/models/other\n\nteacher: expert")


def one_line(r):
    lines = [x for x in (r.stdout + r.stderr).splitlines() if x.strip()]
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.parametrize("overlay, key, allowed", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_config_is_one_line_before_any_job(tmp_path, overlay, key, allowed):
    bad = tmp_path / "bad.yaml"
    bad.write_text(overlay)
    r = snakemake("-n", "--configfile", str(SMOKE), str(bad), workdir=tmp_path, check=False)
    assert r.returncode != 0
    line = one_line(r)
    assert line.startswith(f"duomem config error: config key `{key}`: "), line
    assert "; allowed: " in line and allowed in line.split("; allowed: ", 1)[1], line
    assert not (tmp_path / "results").exists()


def test_duplicate_model_id_is_caught(tmp_path):
    dup = tmp_path / "dup.yaml"
    dup.write_text(DUPLICATE)
    assert list(yaml.safe_load(DUPLICATE)["models"]) == ["expert", "tiny-random"]  # what PyYAML alone sees
    r = snakemake("-n", "--configfile", str(dup), workdir=tmp_path, check=False)
    assert r.returncode != 0
    line = one_line(r)
    assert line.startswith("duomem config error: config key `models.tiny-random`: defined twice in ")
    assert "lines 13 and 19" in line and "allowed: each key once per file" in line
    assert not (tmp_path / "results").exists()


def test_an_lr_that_yaml_reads_as_text_says_how_to_write_it():
    from duomem.config_check import check_schema

    schema = yaml.safe_load(SCHEMA.read_text())
    with pytest.raises(ConfigError, match=r"'1e-4' is text \(YAML reads 1e-4 as text; write 1.0e-4\)"):
        check_schema(yaml.safe_load("models: {a: {backend: expert}}\nteacher: a\nstudents: [a]\n"
                                    "lora: {lrs: [1e-4]}\n"), schema)


def test_duplicates_inside_lists_and_overrides_across_files():
    with pytest.raises(ConfigError, match=r"`evaluation.extra\[0\].a`: defined twice"):
        check_duplicate_keys("evaluation:\n  extra:\n    - a: 1\n      a: 2\n")
    check_duplicate_keys("a: 1\nb:\n  a: 1\n")  # equal keys in different mappings are fine


@pytest.mark.parametrize("name", ["config.yaml", "config/cpu.yaml", "config/smoke.yaml"])
def test_shipped_configs_pass(name, monkeypatch, tmp_path):
    # the configs' pipeline-built paths (results/...) need not exist; local paths resolve from the workdir
    monkeypatch.chdir(tmp_path)
    config = yaml.safe_load((REPO / name).read_text())
    filled = check_all(config, [REPO / name], SCHEMA)
    assert filled["memory"]["k"] >= 1 and "lrs" in filled["lora"]  # defaults filled in


def test_a_bank_smaller_than_k_stops_the_evaluation(tmp_path):
    """The bank's real size is known only after collection: the evaluation checks it first."""
    from duomem.evaluate import evaluate_with_memory

    memories = tmp_path / "memories.json"
    memories.write_text(json.dumps({"memories": [{"memory_id": f"m{i}", "task": "t", "script": "s"}
                                                 for i in range(2)]}))
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"task_id": "x", "task": "t", "task_type": "pick_and_place_simple"}) + "\n")

    def no_policy():
        raise AssertionError("no policy may be built")

    with pytest.raises(ConfigError, match=r"^config key `memory.k`.*k=3 .* \(2 scripts\); allowed: 1 to 2"):
        evaluate_with_memory(manifest, tmp_path / "e.jsonl", tmp_path / "s.csv", tmp_path / "p.json", no_policy,
                             memory="memp-cd-k3", memories=memories, bank=tmp_path / "bank.npy",
                             queries=tmp_path / "q.npy", split="valid_unseen", max_steps=3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.jsonl", "memories.json"]

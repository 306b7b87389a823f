"""The device check (duomem/gpu_check.py, `make gpu-check`): its tiny CPU run through the real
command line, and its architecture table against the students' published parameter counts."""

import csv
import math
import os
import subprocess
import sys

import pytest
import torch
import yaml

from duomem import gpu_check
from duomem.gpu_check import STUDENTS, build_config, build_model, count_params

REPO = gpu_check.REPO
# What the device machine lacks: the check must not import any of them.
ABSENT = ["snakemake", "alfworld", "textworld", "vllm", "pandas", "datasets", "openai", "jsonschema",
          "matplotlib", "sentence_transformers"]

# Published parameter counts in billions (hub model cards): total, and without the embedding and
# output matrices where the card states it. Gemma 4 E2B: "2.3B effective, 5.1B with embeddings";
# Gemma 3 12B: 12.2B with its SigLIP vision encoder (the card's "12B"); Qwen3-30B-A3B: 30.5B
# total, 3.3B activated.
PUBLISHED = {
    "gemma4-e2b-it": (5.1, None),
    "qwen3-4b-instruct": (4.0, 3.6),
    "qwen3-4b-thinking": (4.0, 3.6),
    "qwen3-8b": (8.2, 6.95),
    "gemma3-12b-it": (12.2, None),
    "qwen3-14b": (14.8, 13.2),
    "qwen3-30b-a3b": (30.5, 29.9),
    "qwen3-32b": (32.8, 31.2),
}


@pytest.fixture(scope="module")
def tiny_csv(tmp_path_factory):
    """`python -m duomem.gpu_check --tiny` from the repository root, with the modules a bare GPU
    machine lacks made unimportable (sitecustomize marks them missing before anything runs)."""
    tmp = tmp_path_factory.mktemp("gpu_check")
    (tmp / "site").mkdir()
    (tmp / "site" / "sitecustomize.py").write_text(
        "import sys\n" + "".join(f"sys.modules[{m!r}] = None\n" for m in ABSENT))
    out = tmp / "out" / "gpu_check.csv"
    env = dict(os.environ, PYTHONPATH=str(tmp / "site"))
    r = subprocess.run([sys.executable, "-m", "duomem.gpu_check", "--tiny", "--out", str(out)], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return out, r


def test_tiny_run_writes_one_row_per_student_and_setting(tiny_csv):
    out, run = tiny_csv
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == gpu_check.COLUMNS
    train = [r for r in rows if r["kind"] == "train"]
    generate = [r for r in rows if r["kind"] == "generate"]
    assert sorted((r["student"], r["gradient_checkpointing"]) for r in train) == sorted(
        (s, c) for s in STUDENTS for c in ("True", "False"))
    assert len(generate) == 1 and len(rows) == 2 * len(STUDENTS) + 1
    for r in rows:
        assert r["status"] == "ok", r
        assert r["hub_path"] == STUDENTS[r["student"]]["path"]
        assert "tiny shapes" in r["note"]
        for key in ("params_b", "step_seconds", "peak_gib"):
            assert math.isfinite(float(r[key])) and float(r[key]) > 0, (key, r)
    for r in train:
        assert float(r["lora_params_m"]) > 0 and r["lora_rank"] == "32"  # the grid's largest rank
        assert r["micro_batch"] == "1" and r["max_length"] == "64"  # config.yaml's batch, tiny length
    # one class per family, kept in tiny mode
    assert {r["student"]: r["arch_class"] for r in train} == {
        "gemma4-e2b-it": "Gemma4ForConditionalGeneration", "gemma3-12b-it": "Gemma3ForConditionalGeneration",
        "qwen3-30b-a3b": "Qwen3MoeForCausalLM", **{s: "Qwen3ForCausalLM" for s in STUDENTS
                                                   if STUDENTS[s]["family"] == "qwen3"}}
    assert float(generate[0]["tokens_per_s"]) > 0 and generate[0]["micro_batch"] == "2"
    twin = {r["gradient_checkpointing"]: r["step_seconds"] for r in train if r["student"] == "qwen3-4b-instruct"}
    assert twin == {r["gradient_checkpointing"]: r["step_seconds"] for r in train
                    if r["student"] == "qwen3-4b-thinking"}  # same shapes: measured once
    assert sorted(p.name for p in out.parent.iterdir()) == ["gpu_check.csv"]  # no temp file left behind
    assert "wrote" in run.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="refusal is for machines without CUDA")
def test_full_shapes_refuse_to_run_on_cpu(tmp_path):
    r = subprocess.run([sys.executable, "-m", "duomem.gpu_check", "--out", str(tmp_path / "x.csv")], cwd=REPO,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "no CUDA device" in r.stderr
    assert not (tmp_path / "x.csv").exists()


@pytest.mark.parametrize("name", list(STUDENTS))
def test_full_shapes_give_the_published_parameter_counts(name):
    """Built on the meta device: no memory, no time."""
    model = build_model(build_config(name), "meta", None)
    total, non_embedding = PUBLISHED[name]
    assert count_params(model) / 1e9 == pytest.approx(total, abs=0.05)
    if non_embedding is not None:
        matrices = {id(model.get_input_embeddings().weight), id(model.get_output_embeddings().weight)}
        embedding = sum(p.numel() for p in model.parameters() if id(p) in matrices)
        assert (count_params(model) - embedding) / 1e9 == pytest.approx(non_embedding, abs=0.05)


def test_lora_on_qwen3_4b_at_rank_8_has_the_papers_parameter_count():
    """Paper §5.2: r = 8 on Qwen3-4B adds 5.9M parameters; train_lora's targets give 5,898,240."""
    from peft import get_peft_model

    from duomem.lora import lora_config

    model = build_model(build_config("qwen3-4b-instruct"), "meta", None)
    model = get_peft_model(model, lora_config(model.config, 8))
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 5_898_240


def test_table_covers_the_paper_config():
    """Every student of config.yaml has its shapes here, and the step's defaults are config.yaml's."""
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    paths = {config["models"][s]["path"] for s in config["students"]}
    assert paths == {s["path"] for s in STUDENTS.values()}
    for name, spec in STUDENTS.items():
        if name in config["models"]:
            assert config["models"][name]["path"] == spec["path"]
    lora = config["lora"]
    assert {k: lora[k] for k in gpu_check.LORA_DEFAULTS} == gpu_check.LORA_DEFAULTS
    settings = gpu_check.lora_settings(REPO / "config.yaml")
    assert settings["rank"] == max(lora["ranks"])
    assert gpu_check.default_students(settings)[:len(lora["models"])] == lora["models"]

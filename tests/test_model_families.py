"""What real students' chat templates do to extraction, SFT and the agent's prompt (issue 14 items
2, 3, 6), on the tiny random model with the mimic templates of tests/mimic_templates.py."""

import json

import pytest
from mimic_templates import GEMMA, QWEN3_HYBRID, with_template
from test_sft import labelled_runs, make_trajectory

from duomem.config_check import ConfigError, check_all
from duomem.data import DataError
from duomem.lora import train_lora
from duomem.memory import extraction_params, make_memory_bank
from duomem.policies import make_policy, policy_from_params, template_kwargs
from duomem.prompts import SYSTEM_PROMPT, initial_conversation
from duomem.references import load_references
from duomem.sft import (IGNORE_INDEX, PrefixMismatch, build_sft_dataset, tokenize_sample, tokenize_with_assistant_mask,
                        trajectory_samples)

from conftest import REPO


@pytest.fixture(scope="module")
def qwen3_mimic(tiny_model_dir, tmp_path_factory):
    return with_template(tiny_model_dir, tmp_path_factory.mktemp("mimic") / "qwen3-mimic", QWEN3_HYBRID)


@pytest.fixture(scope="module")
def gemma_mimic(tiny_model_dir, tmp_path_factory):
    return with_template(tiny_model_dir, tmp_path_factory.mktemp("mimic") / "gemma-mimic", GEMMA)


def _tokenizer(path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)


def _params(path, thinking, max_new_tokens):
    """The flat rule parameters an `hf` model gets from rules/common.smk."""
    return {"backend": "hf", "path": str(path), "thinking": thinking, "temperature": 0.0, "seed": 0,
            "batch_size": 4, "max_new_tokens": max_new_tokens}


# ---- item 2: a thinking student's own memory bank ----

def test_hybrid_thinking_model_extracts_with_thinking_off(qwen3_mimic, tmp_path):
    trajectories = tmp_path / "train.jsonl"
    trajectories.write_text("".join(json.dumps(make_trajectory(3, tid=f"t{i}")) + "\n" for i in range(3)))
    # qwen3-8b-thinking: thinking on for its episodes. Sampled (seeded): the random model's greedy
    # choice is a newline, forever.
    p = {**_params(qwen3_mimic, True, 256), "temperature": 1.0}
    # Thinking on, cut at the extraction budget: every answer is empty; the job fails naming them.
    with pytest.raises(DataError, match=r"3 of 3 extracted scripts are empty .*t0#a1, t1#a1, t2#a1"):
        make_memory_bank(trajectories, tmp_path / "on.json", "llm", lambda: policy_from_params({**p, "max_new_tokens": 12}),
                         progress=False)
    assert not (tmp_path / "on.json").exists()
    q = extraction_params(p, 12, None)  # what scripts/extract_memories.py runs
    assert q["thinking"] is False and q["max_new_tokens"] == 12
    memories = make_memory_bank(trajectories, tmp_path / "off.json", "llm", lambda: policy_from_params(q),
                                progress=False)
    assert len(memories) == 3 and all(m["script"].strip() for m in memories)


def test_thinking_only_model_extracts_with_its_own_budget():
    q = extraction_params(_params("Qwen/Qwen3-4B-Thinking-2507", "always", 160), 96, 4096)
    assert q["max_new_tokens"] == 4096 + 96 and q["thinking"] == "always"
    assert template_kwargs("always") == {} and template_kwargs(False) == {"enable_thinking": False}
    plain = extraction_params(_params("x", None, 160), 96, None)
    assert plain["max_new_tokens"] == 96 and plain["thinking"] is None


# ---- item 3: Full History SFT on Qwen3's hybrid template ----

def test_full_history_sft_is_exact_on_the_qwen3_hybrid_template(qwen3_mimic):
    tok, kw = _tokenizer(qwen3_mimic), {"enable_thinking": False}
    [s] = trajectory_samples(make_trajectory(3), "full")
    with pytest.raises(PrefixMismatch):  # one sequence cannot carry every turn's loss here
        tokenize_with_assistant_mask(tok, s["messages"], s["train_on"], kw)
    sequences = tokenize_sample(tok, s["messages"], s["train_on"], kw)
    assert len(sequences) == len(s["train_on"]) == 3
    for i, seq in zip(s["train_on"], sequences):
        # the input is exactly the agent's prompt at that step (history, then the generation prompt) ...
        prompt = tok.apply_chat_template(s["messages"][:i], add_generation_prompt=True, tokenize=False, **kw)
        assert prompt.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
        first = next(n for n, label in enumerate(seq["labels"]) if label != IGNORE_INDEX)
        assert tok.decode(seq["input_ids"][:first]) == prompt
        # ... and the loss falls on the teacher's turn and its end token only
        [run] = labelled_runs(seq)
        assert tok.decode(run) == s["messages"][i]["content"] + "<|im_end|>"


def test_lora_trains_on_the_qwen3_hybrid_template(qwen3_mimic, tmp_path):
    traj = tmp_path / "train.jsonl"
    traj.write_text(json.dumps(make_trajectory(2)) + "\n")
    build_sft_dataset(traj, tmp_path / "full.jsonl", "full")
    summary = train_lora(qwen3_mimic, tmp_path / "full.jsonl", tmp_path / "adapter", rank=2, lr=1e-3,
                         batch_size=1, grad_accum=1, max_length=1024, checkpoint_steps=10, logging_steps=1,
                         chat_template_kwargs={"enable_thinking": False}, progress=False)
    assert summary["samples"] == 2 and summary["records_split_per_turn"] == 1
    assert (tmp_path / "adapter" / "adapter_model.safetensors").exists()


def _config(student_path, thinking):
    import yaml

    config = yaml.safe_load((REPO / "config" / "smoke.yaml").read_text())
    config["models"]["tiny-random"]["path"] = str(student_path)
    if thinking is not None:
        config["models"]["tiny-random"]["thinking"] = thinking
    return config


def test_config_check_refuses_a_lora_student_whose_template_cannot_be_trained(qwen3_mimic, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the check remembers passed templates in ./.snakemake
    schema = REPO / "schemas" / "config.schema.yaml"
    # the mimic's path has no "qwen3" in it: name it so, as the thinking key requires
    qwen3 = tmp_path / "qwen3-mimic"
    qwen3.symlink_to(qwen3_mimic)
    with pytest.raises(ConfigError, match=r"config key `models.tiny-random.thinking`: the SFT builder cannot"):
        check_all(_config(qwen3, True), [], schema)  # thinking on: the teacher's turns carry no thinking
    check_all(_config(qwen3, False), [], schema)  # the non-thinking mode trains (per-turn sequences)
    assert list((tmp_path / ".snakemake" / "duomem-template-ok").iterdir())


# ---- item 6: Gemma's template has no system role ----

def test_gemma_agent_prompt_folds_the_system_message(gemma_mimic):
    policy = make_policy("hf", path=gemma_mimic, max_new_tokens=4)
    conv = initial_conversation("You are in a room.\n\nYour task is to: look.",
                                load_references()["pick_and_place_simple"])
    prompt = policy.render(conv)
    assert prompt.startswith("<|im_start|>user\n" + SYSTEM_PROMPT + "\n\n-= Welcome")  # folded, not dropped
    assert prompt.count(SYSTEM_PROMPT) == 1 and prompt.endswith("<|im_start|>model\n")
    assert policy.act([conv])[0].prompt_tokens == len(_tokenizer(gemma_mimic)(prompt, add_special_tokens=False)["input_ids"])


@pytest.mark.parametrize("strategy", ["full", "latest", "last5"])
def test_gemma_sft_masks_only_the_model_turns(gemma_mimic, strategy):
    tok = _tokenizer(gemma_mimic)
    for s in trajectory_samples(make_trajectory(7), strategy):
        [seq] = tokenize_sample(tok, s["messages"], s["train_on"])  # alternation holds: one sequence
        runs = labelled_runs(seq)
        assert [tok.decode(r) for r in runs] == [s["messages"][i]["content"].strip() + "<|im_end|>"
                                                 for i in s["train_on"]]
        text = tok.decode(seq["input_ids"])
        assert text.startswith("<|im_start|>user\n" + SYSTEM_PROMPT) and "<|im_start|>system" not in text

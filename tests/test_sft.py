import json

import pytest

from duomem.config_check import ConfigError
from duomem.data import DataError
from duomem.io import read_jsonl
from duomem.prompts import SYSTEM_PROMPT, initial_conversation
from duomem.sft import (IGNORE_INDEX, TemplateError, build_sft_dataset, tokenize_with_assistant_mask,
                        trajectory_samples)

# raw, with the trailing whitespace alfworld leaves: the agent's first message strips it
FIRST = ("-= Welcome to TextWorld, ALFRED! =-\n\nYou are in the middle of a room.\n\n"
         "Your task is to: put a mug in cabinet.  \n")


def make_trajectory(steps=7, tid="pick_and_place_simple-Mug-None-Cabinet-1/trial_1"):
    """o1, a1, o2, ..., aT, o_{T+1} as duomem.trajectory_messages writes it (o_{T+1}: the win's answer)."""
    msgs = [{"role": "user", "content": FIRST}]
    for s in range(1, steps + 1):
        msgs.append({"role": "assistant", "content": f"Thought: step {s}, I look further.\nAction: go to cabinet {s}"})
        msgs.append({"role": "user", "content": f"You arrive at cabinet {s}. The cabinet {s} is closed."})
    return {"trajectory_id": f"{tid}#a1", "task_id": tid, "task_type": "pick_and_place_simple",
            "task": "put a mug in cabinet", "game": f"train/{tid}/game.tw-pddl", "attempt": 1, "try": 1,
            "steps": steps, "actions": [f"go to cabinet {s}" for s in range(1, steps + 1)], "messages": msgs}


def action(m):
    return m["content"].rsplit("Action: ", 1)[-1]


def test_full_history_is_one_sample_with_every_assistant_turn():
    t = make_trajectory(7)
    [s] = trajectory_samples(t, "full")
    init = initial_conversation(FIRST)
    assert s["messages"][:2] == init  # exactly what the agent sees at inference (no memory block)
    assert s["messages"][0]["content"] == SYSTEM_PROMPT
    assert s["messages"][2:] == t["messages"][1:-1]  # the win's final observation is dropped
    assert s["messages"][-1]["role"] == "assistant"
    assert s["train_on"] == [2, 4, 6, 8, 10, 12, 14]
    assert all(s["messages"][i]["role"] == "assistant" for i in s["train_on"])


def test_latest_only_keeps_the_last_turn():
    samples = trajectory_samples(make_trajectory(7), "latest")
    assert len(samples) == 7 and [s["step"] for s in samples] == list(range(1, 8))
    assert len(samples[0]["messages"]) == 3  # system, o1 -> a1
    s3 = samples[2]["messages"]  # system, o1, a2, o3 -> a3
    assert [m["role"] for m in s3] == ["system", "user", "assistant", "user", "assistant"]
    assert action(s3[2]) == "go to cabinet 2" and s3[3]["content"].startswith("You arrive at cabinet 2")
    assert action(s3[4]) == "go to cabinet 3"
    assert all(s["train_on"] == [len(s["messages"]) - 1] for s in samples)


def test_last5_keeps_five_turns():
    samples = trajectory_samples(make_trajectory(7), "last5")
    full = trajectory_samples(make_trajectory(7), "full")[0]["messages"]
    assert len(samples) == 7
    for s in samples[:6]:  # up to step 6 the whole history fits in the window
        assert s["messages"] == full[:2 * s["step"] + 1]
    m = samples[6]["messages"]  # step 7: o1, then (a2, o3) ... (a6, o7), then a7
    assert len(m) == 2 + 2 * 5 + 1
    assert [action(x) for x in m[2::2]] == [f"go to cabinet {k}" for k in range(2, 8)]
    assert m[:2] == initial_conversation(FIRST)
    roles = [x["role"] for x in m[1:]]
    assert all(a != b for a, b in zip(roles, roles[1:]))  # roles alternate


def test_build_writes_records_and_counts(tmp_path):
    src = tmp_path / "train.jsonl"
    src.write_text("".join(json.dumps(make_trajectory(n, f"task{n}")) + "\n" for n in (3, 5)))
    for strategy, samples in (("full", 2), ("latest", 8), ("last5", 8)):
        out = tmp_path / "sft" / f"{strategy}.jsonl"
        summary = build_sft_dataset(src, out, strategy)
        records = read_jsonl(out)
        assert summary["samples"] == len(records) == samples and summary["trajectories"] == 2
        assert summary["trained_turns"] == 8
        assert set(records[0]) == {"trajectory_id", "task_id", "task_type", "strategy", "step", "messages", "train_on"}
    assert not [p for p in (tmp_path / "sft").iterdir() if p.name.startswith(".")]  # no temp files left


def test_reference_is_optional(tmp_path):
    src = tmp_path / "train.jsonl"
    src.write_text(json.dumps(make_trajectory(2)) + "\n")
    ref = [{"role": "user", "content": "ref obs"}, {"role": "assistant", "content": "Thought: r\nAction: look"}]
    build_sft_dataset(src, tmp_path / "r.jsonl", "full", with_reference=True,
                      references={"pick_and_place_simple": ref})
    [rec] = read_jsonl(tmp_path / "r.jsonl")
    assert rec["messages"][:4] == initial_conversation(FIRST, ref)
    assert rec["train_on"] == [4, 6]  # the reference's assistant turn carries no loss
    build_sft_dataset(src, tmp_path / "default.jsonl", "full", with_reference=True)  # the repository's references


def test_bad_inputs(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(DataError, match="empty.jsonl.*no trajectories"):
        build_sft_dataset(empty, tmp_path / "out.jsonl", "full")
    with pytest.raises(DataError, match="missing.jsonl"):
        build_sft_dataset(tmp_path / "missing.jsonl", tmp_path / "out.jsonl", "full")
    with pytest.raises(ConfigError, match="'last3'.*full, latest, last5"):
        build_sft_dataset(empty, tmp_path / "out.jsonl", "last3")
    bad = make_trajectory(2)
    bad["messages"].insert(1, {"role": "user", "content": "again"})
    (tmp_path / "bad.jsonl").write_text(json.dumps(bad) + "\n")
    with pytest.raises(DataError, match="bad.jsonl:1.*alternate"):
        build_sft_dataset(tmp_path / "bad.jsonl", tmp_path / "out.jsonl", "latest")
    assert not (tmp_path / "out.jsonl").exists()


@pytest.fixture(scope="module")
def tokenizer(smollm2_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(smollm2_dir)


def labelled_runs(ex):
    """Contiguous runs of labelled token ids (one per trained assistant turn)."""
    runs, current = [], []
    for tok, lab in zip(ex["input_ids"], ex["labels"]):
        if lab != IGNORE_INDEX:
            assert lab == tok
            current.append(tok)
        elif current:
            runs.append(current)
            current = []
    return runs + ([current] if current else [])


def test_mask_covers_exactly_assistant_turns(tokenizer):
    [s] = trajectory_samples(make_trajectory(4), "full")
    ex = tokenize_with_assistant_mask(tokenizer, s["messages"], s["train_on"])
    contents = [s["messages"][i]["content"] for i in s["train_on"]]
    runs = labelled_runs(ex)
    assert [tokenizer.decode(r) for r in runs] == [c + "<|im_end|>" for c in contents]
    n_expected = sum(len(tokenizer(c, add_special_tokens=False)["input_ids"]) + 1 for c in contents)
    assert sum(lab != IGNORE_INDEX for lab in ex["labels"]) == n_expected
    # the sequence is the inference rendering, and the header/system/user tokens carry no label
    text = tokenizer.apply_chat_template(s["messages"], tokenize=False)
    assert tokenizer.decode(ex["input_ids"]) == text
    unlabelled = tokenizer.decode([t for t, lab in zip(ex["input_ids"], ex["labels"]) if lab == IGNORE_INDEX])
    assert unlabelled.count("<|im_start|>assistant\n") == 4 and "I look further" not in unlabelled
    assert unlabelled.count("<|im_end|>") == 1 + 4  # system + user turns only


def test_mask_of_per_step_samples(tokenizer):
    for s in trajectory_samples(make_trajectory(7), "last5"):
        ex = tokenize_with_assistant_mask(tokenizer, s["messages"], s["train_on"])
        [run] = labelled_runs(ex)
        assert tokenizer.decode(run) == s["messages"][-1]["content"] + "<|im_end|>"
        start = next(i for i, lab in enumerate(ex["labels"]) if lab != IGNORE_INDEX)
        assert tokenizer.decode(ex["input_ids"][start - 4:start]) == "<|im_start|>assistant\n"
        assert ex["labels"][-1] == IGNORE_INDEX  # the newline after <|im_end|> is not trained


def test_inconsistent_template_is_refused(tokenizer):
    import copy

    tok = copy.deepcopy(tokenizer)
    # a Qwen3-style template: the last assistant turn gets an extra block the earlier ones lack
    tok.chat_template = (
        "{% for m in messages %}<|im_start|>{{ m.role }}\n"
        "{% if m.role == 'assistant' and loop.last %}<think>\n\n</think>\n\n{% endif %}"
        "{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    [s] = trajectory_samples(make_trajectory(2), "full")
    with pytest.raises(TemplateError, match="inserts text"):
        tokenize_with_assistant_mask(tok, s["messages"], s["train_on"])
    # a generation prompt that the rendered history does not contain
    tok.chat_template = tok.chat_template.replace("assistant\n{% endif %}", "assistant\nX{% endif %}")
    with pytest.raises(TemplateError, match="renders the conversation up to message 2"):
        tokenize_with_assistant_mask(tok, s["messages"], s["train_on"])
    with pytest.raises(ValueError, match="train_on index 1"):
        tokenize_with_assistant_mask(tokenizer, s["messages"], [1])

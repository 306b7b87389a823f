"""SFT prompts that carry memory (duomem.sft_memory, `lora.sft_memory`): laid out as the agent's
prompt under each configuration, retrieval leaving out the trajectory's own game."""

import json

import numpy as np
import pytest

from duomem.data import DataError
from duomem.io import read_jsonl
from duomem.memory_config import context_builder
from duomem.prompts import MEMORY_HEADER, initial_conversation
from duomem.sft import trajectory_samples
from duomem.sft_memory import build_memory_sft_dataset, leave_one_out_scripts

from test_sft import make_trajectory

# four games; game A has two trials (the same scene and task: one game for leave-one-out)
TASKS = ["train/A/trial_1", "train/A/trial_2", "train/B/trial_1", "train/C/trial_1", "train/D/trial_1"]
VECTORS = np.array([[1.0, 0.0], [1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.7, 0.3]], dtype=np.float32)


def bank():
    memories = [{"memory_id": f"{t}#a1", "task_id": t, "script": f"script of {t}"} for t in TASKS]
    return memories, VECTORS, [m["memory_id"] for m in memories]


def test_leave_one_out_skips_the_own_game_and_ranks_by_similarity():
    got = leave_one_out_scripts(["train/A/trial_1", "train/C/trial_1"], *bank(), k=2)
    # A's other trial is the most similar memory, and it is left out with A's own
    assert got["train/A/trial_1"] == ["script of train/B/trial_1", "script of train/D/trial_1"]
    assert got["train/C/trial_1"] == ["script of train/D/trial_1", "script of train/B/trial_1"]


def test_leave_one_out_refuses_a_mismatched_or_too_small_bank():
    memories, vectors, ids = bank()
    with pytest.raises(DataError, match="ids differ"):
        leave_one_out_scripts(["train/A/trial_1"], memories, vectors, ids[::-1], k=1)
    with pytest.raises(DataError, match="no memory in the bank"):
        leave_one_out_scripts(["train/E/trial_1"], memories, vectors, ids, k=1)
    with pytest.raises(DataError, match="fewer than k=4"):
        leave_one_out_scripts(["train/A/trial_1"], memories, vectors, ids, k=4)


def write_inputs(tmp_path):
    trajectories = []
    for t in TASKS:
        tr = make_trajectory(3, tid=t.split("/", 1)[1])
        tr["task_id"], tr["trajectory_id"] = t, f"{t}#a1"
        trajectories.append(tr)
    trajectories.insert(2, {**trajectories[2], "won": False})  # a loss: no sample
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(t) + "\n" for t in trajectories))
    memories, vectors, ids = bank()
    (tmp_path / "memories.json").write_text(json.dumps({"memories": memories}))
    np.save(tmp_path / "embeddings.npy", vectors)
    (tmp_path / "embeddings.ids.json").write_text(json.dumps(ids))
    reference = [{"role": "user", "content": "ref obs"}, {"role": "assistant", "content": "Thought: r.\nAction: look"}]
    (tmp_path / "refs.json").write_text(json.dumps({tt: {"messages": reference} for tt in (
        "pick_and_place_simple", "look_at_obj_in_light", "pick_clean_then_place_in_recep",
        "pick_heat_then_place_in_recep", "pick_cool_then_place_in_recep", "pick_two_obj_and_place")}))
    return trajectories, reference


def test_samples_take_the_layouts_in_turn_as_the_agent_lays_them_out(tmp_path):
    trajectories, reference = write_inputs(tmp_path)
    banks = {"cd": (tmp_path / "memories.json", tmp_path / "embeddings.npy")}
    summary = build_memory_sft_dataset(tmp_path / "train.jsonl", tmp_path / "out.jsonl", "full",
                                       ["none", "memp-cd-k2"], tmp_path / "refs.json", banks)
    assert summary["trajectories"] == 5 and summary["samples_per_memory"] == {"none": 3, "memp-cd-k2": 2}
    records = read_jsonl(tmp_path / "out.jsonl")
    assert [r["memory"] for r in records] == ["none", "memp-cd-k2", "none", "memp-cd-k2", "none"]
    wins = [t for t in trajectories if t.get("won") is not False]
    # "none": the paper's sample, unchanged
    assert records[0]["messages"] == trajectory_samples(wins[0], "full")[0]["messages"]
    # memp-cd-k2: the prompt the agent builds for this task under MemP+CD (reference, then the task
    # with the k scripts retrieved from the bank without A's two trials)
    r, t = records[1], wins[1]
    assert t["task_id"] == "train/A/trial_2"
    scripts = ["script of train/B/trial_1", "script of train/D/trial_1"]
    first = t["messages"][0]["content"]
    assert r["messages"][:4] == initial_conversation(first, reference, scripts)
    assert r["messages"][3]["content"].endswith(f"{MEMORY_HEADER}\nMemory 1: {scripts[0]}\nMemory 2: {scripts[1]}")
    # the loss falls on the episode's assistant turns only, never on the reference's
    assert r["train_on"] == [4, 6, 8] and r["messages"][2]["content"] == reference[1]["content"]
    assert all(r["messages"][i]["role"] == "assistant" for i in r["train_on"])


def test_the_prompt_matches_the_agents_retrieval(tmp_path):
    """The agent's own retrieval (duomem.memory_config) over a bank without the task's game gives the
    same scripts as the leave-one-out retrieval over the whole bank."""
    memories, vectors, ids = bank()
    keep = [i for i, m in enumerate(memories) if not m["task_id"].startswith("train/C/")]
    context_for = context_builder("memp-cd-k3", [{"task_id": "train/C/trial_1", "task_type": "x"}],
                                  references={"x": [{"role": "user", "content": "r"}]},
                                  memories=[memories[i] for i in keep], bank_vectors=vectors[keep],
                                  query_vectors=vectors[3:4], query_ids=["train/C/trial_1"])
    _, agent_scripts = context_for({"task_id": "train/C/trial_1", "task_type": "x"})
    assert leave_one_out_scripts(["train/C/trial_1"], memories, vectors, ids, k=3)["train/C/trial_1"] == agent_scripts


def test_a_label_needs_its_bank(tmp_path):
    write_inputs(tmp_path)
    with pytest.raises(DataError, match="needs the 'self' memory bank"):
        build_memory_sft_dataset(tmp_path / "train.jsonl", tmp_path / "out.jsonl", "full", ["memp-self-k1"],
                                 tmp_path / "refs.json", {})
    assert not (tmp_path / "out.jsonl").exists()

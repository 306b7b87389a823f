"""Teacher collection with injected mistakes (`teacher_collection.mistake_rate`, the CPU default's
DART-style addition): mistakes replace the teacher's command at the set rate, never at the first
step or twice in a row, the same ones on a rerun; the handcoded expert recovers from them on real
games; SFT puts no loss on them and the key-step memories leave them out."""

import pytest

from duomem.collect import collect
from duomem.data import build_manifest
from duomem.io import read_jsonl, write_jsonl_atomic
from duomem.memory import keystep_script
from duomem.policies.base import Completion, Policy
from duomem.policies.expert import ExpertPolicy
from duomem.policies.perturbed import PerturbedPolicy, injected_turns, mistake, room_receptacles
from duomem.sft import trajectory_samples

ROOM = ("-= Welcome to TextWorld, ALFRED! =-\n\nYou are in the middle of a room. Looking quickly around you, "
        "you see a bed 1, a desk 2, a desk 1, a drawer 2, a drawer 1, and a shelf 1.\n\n"
        "Your task is to: put a pen in drawer.")


class _Looks(Policy):
    def act(self, conversations, infos=None, sampling=None):
        return [Completion("Thought: I look.\nAction: look") for _ in conversations]


def _conversation(turns):
    msgs = [{"role": "system", "content": "s"}, {"role": "user", "content": ROOM}]
    for _ in range(turns):
        msgs += [{"role": "assistant", "content": "Thought: I look.\nAction: look"},
                 {"role": "user", "content": "You see nothing."}]
    return msgs


def test_room_receptacles_and_mistakes_name_the_room():
    receptacles = room_receptacles(_conversation(0))
    assert receptacles == [("bed", 1), ("desk", 2), ("desk", 1), ("drawer", 2), ("drawer", 1), ("shelf", 1)]
    import random

    rng = random.Random(0)
    made = {mistake(receptacles, rng) for _ in range(200)}
    missing = {"go to bed 2", "go to desk 3", "go to drawer 3", "go to shelf 2"}
    assert missing <= made  # a number past the room's highest of each type
    assert made - missing <= {f"go to {k} {n}" for k, n in receptacles}  # or a detour the room has


def test_injected_turns_follow_the_rate_never_first_never_twice_in_a_row():
    assert injected_turns(0, "game", 30, 0.0) == []
    keys = [f"game {i}" for i in range(400)]
    draws = [injected_turns(0, k, 30, 0.2) for k in keys]
    assert all(0 not in d and all(b - a > 1 for a, b in zip(d, d[1:])) for d in draws)
    rate = sum(map(len, draws)) / (len(keys) * 29)
    assert 0.13 < rate < 0.2  # 0.2 per step, less the turns right after a mistake
    assert draws == [injected_turns(0, k, 30, 0.2) for k in keys]  # a rerun injects the same
    assert draws != [injected_turns(1, k, 30, 0.2) for k in keys]  # another seed, other mistakes
    assert injected_turns(0, keys[0], 10, 0.2) == [t for t in draws[0] if t < 10]  # a prefix: resumable


def test_perturbed_policy_marks_what_it_replaced():
    policy = PerturbedPolicy(_Looks(), 0.4, seed=3)
    expected = injected_turns(3, ROOM, 20, 0.4)
    for turn in range(20):
        (c,) = policy.act([_conversation(turn)])
        assert c.injected == (turn in expected)
        if c.injected:
            assert c.text.split("Action: ")[1].startswith("go to ")
        else:
            assert c.text.endswith("Action: look")
    assert policy.describe()["mistake_rate"] == 0.4
    with pytest.raises(ValueError, match="rate"):
        PerturbedPolicy(_Looks(), 1.0)


def test_no_loss_on_injected_steps():
    record = {"messages": [{"role": "user", "content": ROOM}]
              + [m for a in ("go to desk 3", "go to drawer 1", "take pen 1 from drawer 1")
                 for m in ({"role": "assistant", "content": f"Thought: t.\nAction: {a}"},
                           {"role": "user", "content": "o"})],
              "injected_steps": [1]}
    (full,) = trajectory_samples(record, "full")
    trained = [full["messages"][i]["content"] for i in full["train_on"]]
    assert [t.split("Action: ")[1] for t in trained] == ["go to drawer 1", "take pen 1 from drawer 1"]
    assert [s["step"] for s in trajectory_samples(record, "last5")] == [2, 3]
    assert trajectory_samples({**record, "injected_steps": [1, 2, 3]}, "full") == []


def test_keystep_memories_leave_mistakes_out():
    t = {"task": "put a pen in drawer", "task_type": "pick_and_place_simple",
         "actions": ["go to desk 1", "take pen 1 from desk 1", "go to bed 2", "go to drawer 1", "move pen 1 to drawer 1"]}
    assert "bed" in keystep_script(t)
    script = keystep_script({**t, "injected_steps": [3]})
    assert "bed" not in script and script.endswith("take pen from desk -> go to drawer -> move pen to drawer")


def test_expert_recovers_from_injected_mistakes_on_real_games(tmp_path, data_root):
    manifest = tmp_path / "train.jsonl"
    write_jsonl_atomic(manifest, build_manifest(data_root, "train", per_task_type=1, seed=0))
    out, stats_out = tmp_path / "traj.jsonl", tmp_path / "stats.json"
    stats = collect(manifest, out, stats_out, ExpertPolicy, attempts=1, retries=0, max_steps=30, num_envs=2,
                    expert=True, mistake_rate=0.3, progress=False)
    trajectories = read_jsonl(out)
    assert stats["successful_trajectories"] >= 4  # of 6: the expert finds its way back
    assert stats["injected_mistakes_in_wins"] == sum(len(t["injected_steps"]) for t in trajectories) > 0
    answers = []
    for t in trajectories:
        for step in t["injected_steps"]:
            assert t["actions"][step - 1].startswith("go to ")
            answers.append(t["messages"][2 * step]["content"])
            assert step + 1 not in t["injected_steps"]
    assert any(a == "Nothing happens." for a in answers)  # a receptacle the room lacks
    after = [t["messages"][2 * s + 1]["content"] for t in trajectories for s in t["injected_steps"]
             if t["messages"][2 * s]["content"] == "Nothing happens." and 2 * s + 1 < len(t["messages"])]
    assert after and all(a.startswith("Thought: That command did not work.") for a in after)
    again = tmp_path / "again.jsonl"
    collect(manifest, again, tmp_path / "s2.json", ExpertPolicy, attempts=1, retries=0, max_steps=30,
            num_envs=2, expert=True, mistake_rate=0.3, progress=False)
    assert [t["messages"] for t in read_jsonl(again)] == [t["messages"] for t in trajectories]


def test_descending_expert_counts_instances_down_to_one(tmp_path, data_root):
    from duomem.env import _instances_ascending, expert_mode

    room = {"shelf 3": "shelf", "desk 1": "desk", "shelf 1": "shelf", "shelf 2": "shelf", "drawer 10": "drawer",
            "drawer 9": "drawer"}
    assert list(_instances_ascending(room)) == ["shelf 1", "shelf 2", "shelf 3", "desk 1", "drawer 9", "drawer 10"]
    assert expert_mode("vllm", "descending") is False and expert_mode("expert", None) == "alfworld"
    with pytest.raises(ValueError, match="search"):
        expert_mode("expert", "random")
    manifest = tmp_path / "train.jsonl"
    write_jsonl_atomic(manifest, build_manifest(data_root, "train", per_task_type=2, seed=0))
    runs = {}
    for search in ("alfworld", "descending"):
        collect(manifest, tmp_path / f"{search}.jsonl", tmp_path / f"{search}.json", ExpertPolicy, attempts=1,
                retries=0, max_steps=30, num_envs=2, expert=search, progress=False)
        runs[search] = read_jsonl(tmp_path / f"{search}.jsonl")

    def steps(trajectories):  # consecutive `go to`s within one receptacle class: +1 or -1
        out = []
        for t in trajectories:
            goes = [a.split()[2:] for a in t["actions"] if a.startswith("go to ")]
            out += [int(b[1]) - int(a[1]) for a, b in zip(goes, goes[1:]) if a[0] == b[0] and a[1] != b[1]]
        return out

    assert len(runs["descending"]) >= len(runs["alfworld"]) - 2  # as good a teacher
    up, down = steps(runs["alfworld"]), steps(runs["descending"])  # (a return to a seen place is the odd one)
    assert up and sum(d == 1 for d in up) >= 0.8 * len(up)
    assert down and sum(d == -1 for d in down) >= 0.8 * len(down)

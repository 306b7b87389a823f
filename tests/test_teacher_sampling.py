"""Teacher collection draws a trajectory of its own on every attempt and retry (issue 14 item 1):
attempt 1's first try is greedy, every other try is sampled with a seed of its own per (task,
attempt, try); exact duplicate wins are dropped and counted."""

import json

import pytest

from duomem.agent import run_episodes
from duomem.collect import collect, collection_stats, drop_duplicates, instance_sampling
from duomem.data import build_manifest
from duomem.env import EnvPool
from duomem.io import read_jsonl, write_jsonl_atomic
from duomem.policies import make_policy
from duomem.policies.expert import ExpertPolicy


def test_each_try_has_a_seed_of_its_own_and_the_first_is_greedy():
    assert instance_sampling(0, "t", 1, 1, 0.7) is None  # the teacher's best guess, as at evaluation
    tries = [(a, k) for a in (1, 2, 3) for k in (1, 2, 3) if (a, k) != (1, 1)]
    drawn = [instance_sampling(0, "t", a, k, 0.7) for a, k in tries]
    assert all(d["temperature"] == 0.7 for d in drawn)
    assert len({d["seed"] for d in drawn}) == len(tries)  # no two tries share their draws
    assert instance_sampling(0, "u", 2, 1, 0.7)["seed"] != instance_sampling(0, "t", 2, 1, 0.7)["seed"]
    assert instance_sampling(1, "t", 2, 1, 0.7)["seed"] != instance_sampling(0, "t", 2, 1, 0.7)["seed"]
    assert instance_sampling(0, "t", 1, 1, 0.7, greedy_first=False) is not None
    assert all(instance_sampling(0, "t", a, k, 0.0) is None for a, k in tries)  # temperature 0: all greedy


def _win(task, attempt, try_, actions):
    turns = [{"completion": f"Action: {a}", "observation": "ok"} for a in actions]
    return {"base_task_id": task, "attempt": attempt, "try": try_, "won": True, "steps": len(actions),
            "first_observation": f"room of {task}", "turns": turns}


def test_exact_duplicate_wins_are_dropped_and_counted():
    wins = [_win("a", 1, 1, ["go to x", "take y"]), _win("a", 2, 1, ["go to x", "take y"]),
            _win("a", 3, 2, ["go to z", "take y"]), _win("b", 1, 1, ["go to x", "take y"])]
    kept, dropped = drop_duplicates(wins)
    assert dropped == 1 and [(w["base_task_id"], w["attempt"]) for w in kept] == [("a", 1), ("a", 3), ("b", 1)]
    stats = collection_stats(wins + [{**_win("b", 2, 1, ["look"]), "won": False}], 2, 3, retries=1,
                             duplicates=dropped)
    assert stats["max_tries_per_instance"] == 2 and set(stats["solved_at_try"]) == {1, 2}
    assert stats["successful_trajectories"] == 4 and stats["distinct_trajectories"] == 3
    assert stats["duplicates_dropped"] == 1


def test_sampled_episodes_follow_their_own_seeds(tiny_model_dir, data_root):
    """Three episodes of one game in one batch: two share a seed and read the same, the third
    differs; a greedy episode beside them is what greedy decoding gives alone."""
    game = build_manifest(data_root, "valid_unseen", per_task_type=1, seed=0)[0]
    tasks = [{**game, "task_id": f"{game['task_id']}#{i}", "sampling": s} for i, s in
             enumerate([{"temperature": 1.0, "seed": 1}, {"temperature": 1.0, "seed": 2},
                        {"temperature": 1.0, "seed": 1}, None])]
    policy = make_policy("hf", path=tiny_model_dir, batch_size=4, max_new_tokens=8)
    with EnvPool(4, max_steps=2) as pool:
        records = {r["task_id"][-1]: r for r in run_episodes(tasks, policy, pool, data_root, 2)}
    text = {k: [t["completion"] for t in r["turns"]] for k, r in records.items()}
    assert text["0"] == text["2"] and text["0"] != text["1"]
    greedy = make_policy("hf", path=tiny_model_dir, batch_size=1, max_new_tokens=8)
    with EnvPool(1, max_steps=2) as pool:
        alone = run_episodes(tasks[3:], greedy, pool, data_root, 2)[0]
    assert text["3"] == [t["completion"] for t in alone["turns"]]


class _Recording(ExpertPolicy):
    """The oracle expert (it ignores sampling), noting the sampling settings each turn asked for."""

    def __init__(self, seen):
        self.seen = seen

    def act(self, conversations, infos=None, sampling=None):
        self.seen.extend(sampling or [None] * len(conversations))
        return super().act(conversations, infos)


def test_collection_samples_every_try_but_the_first(tmp_path, data_root):
    manifest = tmp_path / "train.jsonl"
    write_jsonl_atomic(manifest, build_manifest(data_root, "train", per_task_type=1, seed=0)[:2])
    seen = []
    out, stats_out = tmp_path / "train_traj.jsonl", tmp_path / "stats.json"
    stats = collect(manifest, out, stats_out, lambda: _Recording(seen), attempts=2, retries=1, max_steps=30,
                    temperature=0.7, num_envs=2, expert=True, progress=False)
    greedy = [s for s in seen if s is None]
    sampled = [s for s in seen if s is not None]
    assert greedy and sampled and all(s["temperature"] == 0.7 for s in sampled)
    assert len({s["seed"] for s in sampled}) == len(sampled)  # every turn of every sampled try: its own
    trajectories = read_jsonl(out)
    assert all((t["attempt"] == 1 and t["try"] == 1) == (t["sampling"] is None) for t in trajectories)
    messages = [(t["task_id"], json.dumps(t["messages"])) for t in trajectories]
    assert len(set(messages)) == len(messages) == stats["distinct_trajectories"]
    assert stats["successful_trajectories"] == stats["distinct_trajectories"] + stats["duplicates_dropped"]
    assert stats["max_tries_per_instance"] == 2

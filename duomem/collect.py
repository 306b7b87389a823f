"""Teacher trajectory collection (paper §3.3, table 6): every train task is attempted `attempts`
times (an instance); an unsolved instance is retried up to `retries` times after its first try
(1 + retries tries in all); only wins are kept.

Sampling (paper §4: "diverse solution paths for the same task"): with `greedy_first`, the first try
of the first attempt is greedy (the teacher's best guess, decoded as at evaluation); every other try
is sampled at `temperature` with a seed of its own per (task, attempt, try), so attempts and retries
draw different trajectories, and a rerun draws the same ones. Exact duplicates among the wins (same
task, same messages) are dropped before memories and SFT data are made, and counted.

Resumable like evaluation: every finished try is logged at once, and a rerun skips logged tries.
"""

import json
import sys
from statistics import mean

from tqdm import tqdm

from .agent import episode_seed, run_episodes
from .data import data_root as find_data_root
from .env import EnvPool
from .episode_log import EpisodeLog, fingerprint, partial_log_path
from .io import read_jsonl, write_json_atomic, write_jsonl_atomic
from .provenance import provenance
from .trajectory_messages import trajectory_messages


def instance_sampling(seed, task_id, attempt, try_, temperature, greedy_first=True):
    """How one try is decoded: None (the policy's own settings: greedy) for the first try of the
    first attempt when `greedy_first`, or when `temperature` is 0; else `temperature` with a seed
    of this (task, attempt, try)'s own."""
    if temperature <= 0 or (greedy_first and attempt == 1 and try_ == 1):
        return None
    return {"temperature": float(temperature), "seed": episode_seed(seed, f"{task_id}#a{attempt}#t{try_}")}


def drop_duplicates(wins):
    """The wins without exact repeats (same task, same messages: a teacher that decoded the same
    trajectory twice); returns (kept, number dropped). Repeats would weigh one trajectory several
    times in the SFT data and fill top-k retrieval with copies."""
    seen, kept = set(), []
    for r in wins:
        key = (r["base_task_id"], json.dumps(trajectory_messages(r), ensure_ascii=False))
        if key not in seen:
            seen.add(key)
            kept.append(r)
    return kept, len(wins) - len(kept)


def collection_stats(tries, n_tasks, attempts, retries, duplicates=0):
    """Table 6: instances, solved at try 1..1+retries, cumulative success, mean steps of the wins,
    exact duplicates dropped and the distinct trajectories kept."""
    instances = n_tasks * attempts
    wins = [r for r in tries if r["won"]]
    by_try = {k: sum(1 for r in wins if r["try"] == k) for k in range(1, retries + 2)}
    cumulative, total = {}, 0
    for k in range(1, retries + 2):
        total += by_try[k]
        cumulative[k] = round(100 * total / instances, 2) if instances else float("nan")
    solved_tasks = {r["base_task_id"] for r in wins}
    return {
        "tasks": n_tasks, "attempts_per_task": attempts, "retries_per_instance": retries,
        "max_tries_per_instance": retries + 1, "instances": instances, "episodes_run": len(tries),
        "successful_trajectories": len(wins), "duplicates_dropped": duplicates,
        "distinct_trajectories": len(wins) - duplicates,
        "solved_at_try": by_try, "cumulative_success_pct": cumulative,
        "tasks_with_a_success": len(solved_tasks),
        "mean_steps_successful": round(mean(r["steps"] for r in wins), 2) if wins else float("nan"),
        "injected_mistakes_in_wins": sum(len(r.get("injected_steps", [])) for r in wins),
    }


def collect(manifest, trajectories_out, stats_out, make_policy, *, attempts, retries, max_steps, seed=0,
            temperature=0.0, greedy_first=True, num_envs=4, alfworld_data="", run_params=None, expert=False,
            mistake_rate=0.0, progress=True):
    """`mistake_rate` > 0 puts a mistake in the teacher's place at that rate per step
    (duomem.policies.perturbed; the CPU default's addition, 0 in the paper's protocol)."""
    root = find_data_root(alfworld_data)
    tasks = read_jsonl(manifest)
    params = {"kind": "teacher-collection", "attempts": attempts, "retries": retries, "max_steps": max_steps,
              "seed": seed, "temperature": temperature, "greedy_first": greedy_first,
              "mistake_rate": mistake_rate, **(run_params or {})}
    if mistake_rate:
        from .policies.perturbed import PerturbedPolicy

        make_teacher = make_policy
        make_policy = lambda: PerturbedPolicy(make_teacher(), mistake_rate, seed)  # noqa: E731
    log_path = partial_log_path(trajectories_out)
    policy = None
    with EpisodeLog(log_path, fingerprint(params)) as log:
        if log.records:
            print(f"resumed {len(log.records)} finished tries from {log_path}", file=sys.stderr)
        bar = tqdm(total=len(tasks) * attempts, desc="teacher instances", file=sys.stderr, disable=not progress)
        try:
            with EnvPool(num_envs, max_steps=max_steps, expert=expert) as pool:
                for k in range(1, retries + 2):
                    done = {(r["base_task_id"], r["attempt"], r["try"]) for r in log.records}
                    won = {(r["base_task_id"], r["attempt"]) for r in log.records if r["won"]}
                    todo = []
                    for t in tasks:
                        for a in range(1, attempts + 1):
                            if (t["task_id"], a) in won or (t["task_id"], a, k) in done:
                                continue
                            sampling = instance_sampling(seed, t["task_id"], a, k, temperature, greedy_first)
                            meta = {"base_task_id": t["task_id"], "attempt": a, "try": k,
                                    "sampling": sampling}
                            todo.append({**t, "task_id": f"{t['task_id']}#a{a}#t{k}", "meta": meta,
                                         "sampling": sampling})
                    bar.n = len(won)
                    bar.refresh()
                    if not todo:
                        continue
                    policy = policy or make_policy()
                    run_episodes(todo, policy, pool, root, max_steps, seed=seed, on_finish=log.append)
        finally:
            bar.close()
            if policy is not None:
                policy.close()
        tries = list(log.records)
    order = {t["task_id"]: i for i, t in enumerate(tasks)}
    wins = sorted((r for r in tries if r["won"]), key=lambda r: (order[r["base_task_id"]], r["attempt"]))
    wins, duplicates = drop_duplicates(wins)
    trajectories = [{
        "trajectory_id": f"{r['base_task_id']}#a{r['attempt']}", "task_id": r["base_task_id"],
        "task_type": r["task_type"], "task": r["task"], "game": r["game"], "attempt": r["attempt"],
        "try": r["try"], "sampling": r.get("sampling"), "steps": r["steps"], "seconds": r["seconds"],
        "actions": r["actions"], "injected_steps": r.get("injected_steps", []),
        "messages": trajectory_messages(r),
    } for r in wins]
    stats = collection_stats(tries, len(tasks), attempts, retries, duplicates)
    write_jsonl_atomic(trajectories_out, trajectories)
    write_json_atomic(stats_out, provenance(stats=stats, params=params))
    log_path.unlink(missing_ok=True)
    return stats

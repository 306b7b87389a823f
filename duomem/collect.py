"""Teacher trajectory collection (paper §3.3, table 6): every train task is attempted `attempts`
times; an unsolved instance is retried up to `retries` tries in all; only wins are kept.

Resumable like evaluation: every finished try is logged at once, and a rerun skips logged tries.
"""

import sys
from statistics import mean

from tqdm import tqdm

from .agent import run_episodes
from .data import data_root as find_data_root
from .env import EnvPool
from .evaluate import fingerprint, partial_log_path
from .io import EpisodeLog, read_jsonl, write_json_atomic, write_jsonl_atomic
from .provenance import provenance


def trajectory_messages(record):
    """The episode as chat turns: first observation, then assistant/user pairs (the environment's
    answer to the last action is kept)."""
    msgs = [{"role": "user", "content": record["first_observation"]}]
    for turn in record["turns"]:
        msgs.append({"role": "assistant", "content": turn["completion"]})
        msgs.append({"role": "user", "content": turn["observation"]})
    return msgs


def collection_stats(tries, n_tasks, attempts, retries):
    """Table 6: instances, solved at try 1..retries, cumulative success, mean steps of the wins."""
    instances = n_tasks * attempts
    wins = [r for r in tries if r["won"]]
    by_try = {k: sum(1 for r in wins if r["try"] == k) for k in range(1, retries + 1)}
    cumulative, total = {}, 0
    for k in range(1, retries + 1):
        total += by_try[k]
        cumulative[k] = round(100 * total / instances, 2) if instances else float("nan")
    solved_tasks = {r["base_task_id"] for r in wins}
    return {
        "tasks": n_tasks, "attempts_per_task": attempts, "max_tries_per_instance": retries,
        "instances": instances, "episodes_run": len(tries), "successful_trajectories": len(wins),
        "solved_at_try": by_try, "cumulative_success_pct": cumulative,
        "tasks_with_a_success": len(solved_tasks),
        "mean_steps_successful": round(mean(r["steps"] for r in wins), 2) if wins else float("nan"),
    }


def collect(manifest, trajectories_out, stats_out, make_policy, *, attempts, retries, max_steps, seed=0,
            num_envs=4, alfworld_data="", run_params=None, expert=False, progress=True):
    root = find_data_root(alfworld_data)
    tasks = read_jsonl(manifest)
    params = {"kind": "teacher-collection", "attempts": attempts, "retries": retries, "max_steps": max_steps,
              "seed": seed, **(run_params or {})}
    log_path = partial_log_path(trajectories_out)
    policy = None
    with EpisodeLog(log_path, fingerprint(params)) as log:
        if log.records:
            print(f"resumed {len(log.records)} finished tries from {log_path}", file=sys.stderr)
        bar = tqdm(total=len(tasks) * attempts, desc="teacher instances", file=sys.stderr, disable=not progress)
        try:
            with EnvPool(num_envs, max_steps=max_steps, expert=expert) as pool:
                for k in range(1, retries + 1):
                    done = {(r["base_task_id"], r["attempt"], r["try"]) for r in log.records}
                    won = {(r["base_task_id"], r["attempt"]) for r in log.records if r["won"]}
                    todo = []
                    for t in tasks:
                        for a in range(1, attempts + 1):
                            if (t["task_id"], a) in won or (t["task_id"], a, k) in done:
                                continue
                            meta = {"base_task_id": t["task_id"], "attempt": a, "try": k}
                            todo.append({**t, "task_id": f"{t['task_id']}#a{a}#t{k}", "meta": meta})
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
    trajectories = [{
        "trajectory_id": f"{r['base_task_id']}#a{r['attempt']}", "task_id": r["base_task_id"],
        "task_type": r["task_type"], "task": r["task"], "game": r["game"], "attempt": r["attempt"],
        "try": r["try"], "steps": r["steps"], "seconds": r["seconds"], "actions": r["actions"],
        "messages": trajectory_messages(r),
    } for r in wins]
    stats = collection_stats(tries, len(tasks), attempts, retries)
    write_jsonl_atomic(trajectories_out, trajectories)
    write_json_atomic(stats_out, provenance(stats=stats, params=params))
    log_path.unlink(missing_ok=True)
    return stats

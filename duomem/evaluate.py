"""Resumable evaluation: episodes are logged as they finish; outputs appear atomically at the end."""

import csv
import sys
from pathlib import Path

from tqdm import tqdm

from .agent import run_episodes
from .data import data_root as find_data_root
from .data import manifest_checksum
from .env import EnvPool
from .episode_log import EpisodeLog, fingerprint, partial_log_path
from .errors import ConfigError
from .io import atomic_path, read_jsonl, write_json_atomic, write_jsonl_atomic
from .memory import load_memories
from .memory_config import context_builder, load_vectors, parse_label
from .provenance import provenance
from .references import load_references
from .stats import SUMMARY_COLUMNS, summarise

PROTOCOL = {
    "benchmark": "ALFWorld json_2.1.1 (text games, alfworld 0.4 grammar)",
    "success_criterion": "info['won'] (never 'done')",
    "max_steps_meaning": "an episode ends when won or after max_steps actions; unusable model output is a counted step",
}


def write_summary_csv(path, rows):
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=SUMMARY_COLUMNS)
            w.writeheader()
            w.writerows(rows)


def evaluate(manifest, episodes_out, summary_out, provenance_out, make_policy, *, split, max_steps,
             seed=0, num_envs=4, alfworld_data="", run_params=None, context_for=None, expert=False,
             progress=True):
    """Play every task of `manifest` (a JSONL file) with the policy `make_policy()` builds.

    `run_params` are the values that determine the episodes (model, adapter, memory configuration,
    generation settings); they make the resume fingerprint and go into the provenance sidecar.
    """
    root = find_data_root(alfworld_data)
    tasks = read_jsonl(manifest)
    params = {"split": split, "max_steps": max_steps, "seed": seed, **(run_params or {})}
    log_path = partial_log_path(episodes_out)
    wanted = {t["task_id"] for t in tasks}
    with EpisodeLog(log_path, fingerprint(params)) as log:
        done = log.done_ids() & wanted
        if done:
            print(f"resumed {len(done)} finished episodes from {log_path}", file=sys.stderr)
        todo = [t for t in tasks if t["task_id"] not in done]
        if todo:
            policy = make_policy()
            bar = tqdm(total=len(tasks), initial=len(done), desc=f"episodes {split}", file=sys.stderr,
                       disable=not progress, dynamic_ncols=True)
            try:
                with EnvPool(min(num_envs, len(todo)), max_steps=max_steps, expert=expert) as pool:
                    run_episodes(todo, policy, pool, root, max_steps, seed=seed, context_for=context_for,
                                 on_finish=log.append, progress=bar)
            finally:
                bar.close()
                policy.close()
        by_id = {r["task_id"]: r for r in log.records}
    records = [by_id[t["task_id"]] for t in tasks]
    rows = summarise(records)
    write_jsonl_atomic(episodes_out, records)
    write_summary_csv(summary_out, rows)
    write_json_atomic(provenance_out, provenance(
        protocol={**PROTOCOL, "split": split, "max_steps": max_steps, "episodes": len(records),
                  "game_list_sha256_16": manifest_checksum(tasks)},
        params=params, summary=rows[0]))
    log_path.unlink(missing_ok=True)
    return rows


def evaluate_with_memory(manifest, episodes_out, summary_out, provenance_out, make_policy, *, memory,
                         reference=None, memories=None, bank=None, queries=None, **kwargs):
    """`evaluate` under a memory configuration label (see duomem.memory_config)."""
    tasks = read_jsonl(manifest)
    scripts = load_memories(memories) if memories else None
    _, _, k = parse_label(memory)
    if k and scripts is not None and k > len(scripts):  # known only now: the teacher solved fewer instances
        raise ConfigError(f"config key `memory.k` (or `memory.k_ablation`): k={k} (memory configuration {memory}) "
                          f"is larger than the memory bank {memories} ({len(scripts)} scripts); allowed: "
                          f"1 to {len(scripts)}, or collect more trajectories (teacher_collection.attempts/retries)")
    bank_vectors = query_vectors = query_ids = None
    if bank:
        bank_vectors, _ = load_vectors(bank)
        query_vectors, query_ids = load_vectors(queries)
    context_for = context_builder(memory, tasks, references=load_references(Path(reference)) if reference else None,
                                  memories=scripts,
                                  bank_vectors=bank_vectors, query_vectors=query_vectors, query_ids=query_ids)
    return evaluate(manifest, episodes_out, summary_out, provenance_out, make_policy, context_for=context_for,
                    **kwargs)

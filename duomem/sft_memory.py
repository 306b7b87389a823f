"""SFT samples that carry the agent's memory block (`lora.sft_memory`; the CPU default's own choice).

The paper trains on [s; e; o1, a1, ...] (§3.3): prompts without memory. A 135M student trained that
way acts well without memory but is thrown off by the ~1,000 tokens of reference trajectory and
scripts the MemP configurations put before its task (README, "Memory in the training prompt"). With
`lora.sft_memory: [none, memp-self-k3, memp-cd-k3]` the winning trajectories take these layouts in
turn, each laid out exactly as the agent's prompt under that configuration: the task type's
reference trajectory and the k scripts the agent would retrieve for the task from that bank. The
bank was built from these same trajectories, so retrieval leaves out the memories of the
trajectory's own game (its folder: the same scene and task, whatever the trial): at test time the
bank holds no memory of the test game either. The targets stay the teacher's actions.
"""

from pathlib import Path

import numpy as np

from .data import DataError
from .memory import load_memories
from .memory_config import load_vectors, parse_label
from .references import load_references
from .retrieval import normalise
from .sft import check_strategy, read_trajectories, trajectory_samples


def game_of(task_id):
    """The game folder of a task id ("train/<folder>/<trial>"): one scene and task, any trial."""
    return task_id.rsplit("/", 1)[0]


def leave_one_out_scripts(task_ids, memories, vectors, vector_ids, k):
    """{task_id: the k scripts most similar to the task's description (cosine, ties by bank order)},
    leaving out every memory of the task's own game. The query is the task's own row in the bank:
    the bank's embeddings are those of the task descriptions."""
    if [m["memory_id"] for m in memories] != list(vector_ids):
        raise DataError("the memory bank's embeddings are not those of its memories (ids differ): rebuild them")
    row_of = {}
    for i, m in enumerate(memories):
        row_of.setdefault(m["task_id"], i)
    games = np.array([game_of(m["task_id"]) for m in memories])
    bank = normalise(vectors)
    out = {}
    for tid in task_ids:
        if tid not in row_of:
            raise DataError(f"trajectory task {tid} has no memory in the bank: bank and trajectories differ")
        sims = bank @ bank[row_of[tid]]
        sims[games == game_of(tid)] = -np.inf
        if np.isfinite(sims).sum() < k:
            raise DataError(f"the memory bank holds fewer than k={k} memories of other games than {game_of(tid)}")
        out[tid] = [memories[i]["script"] for i in np.argsort(-sims, kind="stable")[:k]]
    return out


def load_bank(memories_path, vectors_path):
    """(memories, vectors, vector ids) of a memory bank and its embeddings."""
    return (load_memories(memories_path), *load_vectors(vectors_path))


def build_memory_sft_dataset(trajectories_path, out_path, strategy, labels, references_path=None, bank_paths=None):
    """Write SFT samples whose prompts carry the memory configurations `labels` (memory labels, e.g.
    "none", "memp-cd-k3"), taken in turn over the winning trajectories in file order.

    `references_path`: the reference trajectories (default the repository's); `bank_paths`:
    {"self" | "cd": (memories.json, embeddings.npy)} for every bank the labels name. Returns a
    summary with the samples per configuration.
    """
    from .io import write_jsonl_atomic

    check_strategy(strategy)
    if not labels:
        raise DataError("lora.sft_memory is empty: name at least one memory configuration (none: the paper's)")
    parsed = [parse_label(label) for label in labels]
    references = load_references(Path(references_path) if references_path else None) if any(k in ("trajectory", "memp") for k, _, _ in parsed) else {}
    banks = {bank: load_bank(*paths) for bank, paths in (bank_paths or {}).items()}
    wins = [t for t in read_trajectories(trajectories_path) if t.get("won") is not False]
    scripts = {}  # (bank, k) -> {task_id: scripts}
    for kind, bank, k in parsed:
        if bank is not None and (bank, k) not in scripts:
            if bank not in banks:
                raise DataError(f"memory configuration {kind}-{bank}-k{k} needs the {bank!r} memory bank")
            scripts[bank, k] = leave_one_out_scripts([t["task_id"] for t in wins], *banks[bank], k)
    records, per_label = [], {label: 0 for label in labels}
    for n, t in enumerate(wins):
        label, (kind, bank, k) = labels[n % len(labels)], parsed[n % len(labels)]
        reference = None
        if kind in ("trajectory", "memp"):
            if t.get("task_type") not in references:
                raise DataError(f"no reference trajectory for task type {t.get('task_type')!r}")
            reference = references[t["task_type"]]
        memory = scripts[bank, k][t["task_id"]] if bank is not None else ()
        where = f"{trajectories_path} ({t.get('trajectory_id', '?')})"
        for s in trajectory_samples(t, strategy, reference, where, scripts=memory):
            records.append({"trajectory_id": t.get("trajectory_id"), "task_id": t.get("task_id"),
                            "task_type": t.get("task_type"), "strategy": strategy, "memory": label, **s})
            per_label[label] += 1
    write_jsonl_atomic(out_path, records)
    return {"strategy": strategy, "memory": list(labels), "trajectories": len(wins), "samples": len(records),
            "samples_per_memory": per_label, "trained_turns": sum(len(r["train_on"]) for r in records)}

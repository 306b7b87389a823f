"""Memory configurations (paper §3.1): what the agent sees before its task.

Labels, as they appear in result paths:
  none                 system prompt + task
  trajectory           + one reference trajectory of the task's type
  script-{bank}-k{k}   + k retrieved scripts
  memp-{bank}-k{k}     + both
where bank is `self` (the evaluated model's own scripts) or `cd` (the teacher's: context distillation).
"""

import json
import re
from pathlib import Path

import numpy as np

from .retrieval import top_k

KINDS = ("none", "script", "trajectory", "memp")
LABEL_RE = r"none|trajectory|(?:script|memp)-(?:self|cd)-k[1-9][0-9]*"


def parse_label(label):
    """(kind, bank, k); bank and k are None where the configuration has no scripts."""
    if label in ("none", "trajectory"):
        return label, None, None
    m = re.fullmatch(r"(script|memp)-(self|cd)-k([1-9][0-9]*)", label)
    if not m:
        raise ValueError(f"unknown memory configuration {label!r}; allowed: none, trajectory, "
                         "script-{self,cd}-k<k>, memp-{self,cd}-k<k>")
    return m.group(1), m.group(2), int(m.group(3))


def make_label(kind, cd=False, k=10):
    return kind if kind in ("none", "trajectory") else f"{kind}-{'cd' if cd else 'self'}-k{k}"


def context_builder(label, tasks, references=None, memories=None, bank_vectors=None, query_vectors=None,
                    query_ids=None):
    """A `context_for(task) -> (reference_turns, scripts)` for the agent loop; retrieval for every
    task is done once, up front."""
    kind, _, k = parse_label(label)
    use_reference = kind in ("trajectory", "memp")
    scripts_by_task = {}
    if kind in ("script", "memp"):
        row = {tid: i for i, tid in enumerate(query_ids)}
        missing = [t["task_id"] for t in tasks if t["task_id"] not in row]
        if missing:
            raise ValueError(f"no query embedding for {len(missing)} tasks, e.g. {missing[0]}")
        queries = np.stack([query_vectors[row[t["task_id"]]] for t in tasks])
        for t, idx in zip(tasks, top_k(queries, bank_vectors, k)):
            scripts_by_task[t["task_id"]] = [memories[i]["script"] for i in idx]
    if use_reference and not references:
        raise ValueError(f"memory configuration {label!r} needs reference trajectories")

    def context_for(task):
        reference = references[task["task_type"]] if use_reference else None
        return reference, scripts_by_task.get(task["task_id"], ())

    return context_for


def load_vectors(npy_path):
    """Embeddings and the ids of their rows (ids.json beside the .npy)."""
    npy_path = Path(npy_path)
    ids = json.loads(npy_path.with_name(npy_path.stem + ".ids.json").read_text())
    return np.load(npy_path), ids

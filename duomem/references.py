"""Reference trajectories (the paper's "Trajectory" memory): one solved train game per task type,
shown to the agent as alternating user/assistant turns before its own task.

They are data in the repository (`duomem/reference_trajectories.json`), made once by
`python -m duomem.references` from alfworld's handcoded expert on train games (never valid_seen or
valid_unseen): for each task type the shortest win among the first `candidates` seeded games. The
expert counts instances down and writes its reasoned thoughts, as the CPU default's teacher does
(duomem.policies.expert), so the references read like the trajectories the student trains on.
"""

import argparse
import json
from importlib import resources

from .data import TASK_TYPES, build_manifest, data_root
from .io import write_json_atomic
from .trajectory_messages import trajectory_messages

REFERENCE_FILE = "reference_trajectories.json"


def reference_path():
    return resources.files("duomem") / REFERENCE_FILE


def load_references(path=None):
    """{task_type: [turns]}; each list alternates user/assistant, user first, ends with assistant."""
    data = json.loads((path or reference_path()).read_text())
    return {t: data[t]["messages"] for t in TASK_TYPES}


def build_references(root, candidates=12, max_steps=30, seed=0, num_envs=2, search="descending"):
    from .env import EnvPool
    from .agent import run_episodes
    from .policies import make_policy

    tasks = build_manifest(root, "train", per_task_type=candidates, seed=seed)
    with EnvPool(num_envs, max_steps=max_steps, expert=search) as pool:
        records = run_episodes(tasks, make_policy("expert"), pool, root, max_steps, seed=seed)
    out = {}
    for t in TASK_TYPES:
        wins = sorted((r for r in records if r["won"] and r["task_type"] == t), key=lambda r: (r["steps"], r["task_id"]))
        if not wins:
            raise RuntimeError(f"the expert solved no {t} game among {candidates}; raise --candidates")
        best = wins[0]
        messages = trajectory_messages(best)[:-1]  # drop the answer to the winning action: end on assistant
        out[t] = {"task_id": best["task_id"], "task": best["task"], "steps": best["steps"], "messages": messages}
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--alfworld-data", default="")
    ap.add_argument("--candidates", type=int, default=12)
    ap.add_argument("--search", default="descending", help="the expert's search order (duomem.env.EXPERT_SEARCHES)")
    ap.add_argument("--out", default=str(reference_path()))
    args = ap.parse_args()
    write_json_atomic(args.out, build_references(data_root(args.alfworld_data), args.candidates, search=args.search))


if __name__ == "__main__":
    main()

"""The agent loop: many episodes stepped together through one `policy.act` call per turn.

Every episode slot owns an environment worker. A finished episode frees its slot and the next
task's reset starts there at once; the new episode joins the batch when its reset is in, so the
model does not wait on a lone reset (it does wait while most of the batch is still resetting, at
the start: one turn for one episode would cost more). Steps are fast (~0.1 s) and are awaited so
the batch stays whole.
"""

import hashlib
import time
from collections import deque
from dataclasses import dataclass, field

from .env import NOTHING_HAPPENS
from .parsing import parse_action
from .prompts import initial_conversation


def episode_seed(seed, task_id):
    return int(hashlib.sha256(f"{seed}:{task_id}".encode()).hexdigest()[:8], 16)


def turn_sampling(sampling, turn):
    """The sampling settings of one turn of an episode sampled with `sampling` ({"temperature",
    "seed"}; None: the policy's own settings): its own seed per turn, so a turn's draw depends on
    the episode and the turn only, never on the batch it shares or on a resume."""
    if not sampling:
        return None
    return {"temperature": float(sampling["temperature"]), "seed": episode_seed(sampling["seed"], f"turn{turn}")}


@dataclass
class Episode:
    task: dict
    messages: list
    info: dict
    max_steps: int
    started: float
    first_observation: str = ""
    turns: list = field(default_factory=list)
    won: bool = False
    prompt_tokens: int = 0
    completion_tokens: int = 0
    sampling: dict = None  # {"temperature", "seed"} of this episode; None: the policy's own (greedy)

    @property
    def finished(self):
        return self.won or len(self.turns) >= self.max_steps

    def take(self, completion):
        """Record the model's turn; return the command to send ("" for an unusable completion)."""
        action, problem = parse_action(completion.text)
        # The history gets the answer only; a thinking block is logged with the turn (Qwen3 card).
        self.messages.append({"role": "assistant", "content": completion.text})
        self.prompt_tokens += completion.prompt_tokens
        self.completion_tokens += completion.completion_tokens
        turn = {"completion": completion.text, "action": action, "problem": problem,
                "admissible": action in self.info.get("admissible", ())}
        if getattr(completion, "thinking", ""):
            turn["thinking"] = completion.thinking
        if getattr(completion, "injected", False):
            turn["injected"] = True
        self.turns.append(turn)
        return action

    def observe(self, result):
        self.turns[-1]["observation"] = result["observation"]
        self.messages.append({"role": "user", "content": result["observation"]})
        self.won = result["won"]
        self.info = result

    def record(self):
        return {
            "task_id": self.task["task_id"], "task_type": self.task["task_type"], "task": self.task["task"],
            "game": self.task["game"], "won": self.won, "steps": len(self.turns),
            "seconds": round(time.time() - self.started, 3),
            "started_at": round(self.started, 3), "ended_at": round(time.time(), 3),
            "invalid_steps": sum(1 for t in self.turns if not t["admissible"]),
            "actions": [t["action"] for t in self.turns],
            "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
            "first_observation": self.first_observation, "turns": self.turns,
            "injected_steps": [i for i, t in enumerate(self.turns, 1) if t.get("injected")],
            **self.task.get("meta", {}),
        }


def run_episodes(tasks, policy, pool, data_root, max_steps, seed=0, context_for=None,
                 on_finish=None, progress=None):
    """Play every task to the end; call `on_finish(record)` the moment each episode ends.

    `context_for(task)` returns (reference_turns, memory_scripts) for the task's prompt. A task's
    "sampling" ({"temperature", "seed"}) makes the policy sample that episode with its own seed.
    """
    context_for = context_for or (lambda task: (None, ()))
    queue, free = deque(tasks), list(range(len(pool)))
    resetting, stepping, active = {}, {}, {}
    started = {}
    records = []

    def finish(slot, ep):
        rec = ep.record()
        records.append(rec)
        if on_finish:
            on_finish(rec)
        if progress:
            progress.update(1)
        free.append(slot)

    def start(slot, result):
        task = resetting.pop(slot)
        reference, scripts = context_for(task)
        messages = initial_conversation(result["observation"], reference, scripts)
        active[slot] = Episode(task, messages, result, max_steps, started[slot],
                               first_observation=result["observation"], sampling=task.get("sampling"))

    while queue or resetting or stepping or active:
        while free and queue:
            slot, task = free.pop(), queue.popleft()
            pool.reset(slot, data_root / task["game"], episode_seed(seed, task["task_id"]))
            resetting[slot], started[slot] = task, time.time()
        # Wait for every step in flight (fast). Wait for resets while at least as many episodes are
        # resetting as are ready: a reset (1-2.5 s) is cheaper than a model turn run half-empty.
        while stepping or (resetting and len(resetting) >= len(active)):
            for slot, result in pool.collect(block=True).items():
                if slot in resetting:
                    start(slot, result)
                else:
                    ep = stepping.pop(slot)
                    ep.observe(result)
                    if ep.finished:
                        finish(slot, ep)
                    else:
                        active[slot] = ep
        if not active:
            continue
        for slot, result in pool.collect(block=False).items():  # resets that happen to be in
            start(slot, result)
        slots = sorted(active)
        episodes = [active.pop(s) for s in slots]
        if progress is not None and hasattr(progress, "set_postfix"):
            progress.set_postfix(batch=len(episodes), step=max(len(e.turns) for e in episodes) + 1)
        sampling = [turn_sampling(e.sampling, len(e.turns)) for e in episodes]
        completions = policy.act([e.messages for e in episodes], [e.info for e in episodes],
                                 **({"sampling": sampling} if any(sampling) else {}))
        if len(completions) != len(episodes):
            raise RuntimeError(f"policy returned {len(completions)} completions for {len(episodes)} conversations")
        for slot, ep, completion in zip(slots, episodes, completions):
            action = ep.take(completion)
            if action:
                pool.step(slot, action)
                stepping[slot] = ep
            else:  # nothing usable: a counted step that the environment never sees
                ep.observe({**ep.info, "observation": NOTHING_HAPPENS, "won": False})
                if ep.finished:
                    finish(slot, ep)
                else:
                    active[slot] = ep
    return records

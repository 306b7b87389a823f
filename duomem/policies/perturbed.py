"""Teacher trajectories with injected mistakes: noise injection in the style of DART (Laskey et al.,
2017), an addition of the CPU default, not part of the paper's method.

A teacher that never errs shows no trajectory of what to do after "Nothing happens." or after a
wrong turn, and that is where a small student gets stuck: it walks "go to bed 2, bed 3, ..." into
receptacles the room does not have. With probability `rate` per step (never at the first step, never
twice in a row) the teacher's command is replaced by a mistake: half the time a `go to` an instance
number the room lacks (answered "Nothing happens."), else a `go to` a receptacle of the room picked
at random (a detour). The teacher recovers on its own from the state the mistake left. Injected turns
stay in the trajectory as context and are marked `injected`: SFT puts no loss on them
(duomem.sft) and the expert's key-step memories leave them out (duomem.memory).

The draws depend on (seed, episode's first observation, turn) only, so a rerun or a resumed
collection injects the same mistakes.
"""

import hashlib
import random
import re

from ..prompts import format_turn
from .base import Completion, Policy
from .expert import expert_thought

_ROOM = re.compile(r"Looking quickly around you, you see (.+?)\.\s*(?:\n|$)")
_RECEPTACLE = re.compile(r"([a-z]+) (\d+)")


def room_receptacles(conversation):
    """The receptacles the episode's first observation lists, as (type, number) pairs."""
    for m in conversation:
        if m["role"] == "user":
            hit = _ROOM.search(m["content"])
            if hit:
                return [(kind, int(n)) for kind, n in _RECEPTACLE.findall(hit.group(1))]
    return []


def mistake(receptacles, rng):
    """A wrong `go to`: an instance number past the room's highest of a type, or a random detour."""
    highest = {}
    for kind, n in receptacles:
        highest[kind] = max(highest.get(kind, 0), n)
    if rng.random() < 0.5:
        kind = rng.choice(sorted(highest))
        return f"go to {kind} {highest[kind] + 1}"
    kind, n = rng.choice(receptacles)
    return f"go to {kind} {n}"


def _draw(seed, key, turn):
    digest = hashlib.sha256(f"{seed}|{key}|{turn}".encode()).hexdigest()
    return random.Random(int(digest[:16], 16))


def injected_turns(seed, key, turns, rate):
    """The 0-based turns (< `turns`) that get a mistake: each from turn 1 on with probability
    `rate`, unless the turn before it got one."""
    out = []
    for t in range(1, turns):
        if (not out or out[-1] != t - 1) and _draw(seed, key, t).random() < rate:
            out.append(t)
    return out


class PerturbedPolicy(Policy):
    def __init__(self, policy, rate, seed=0):
        if not 0 <= rate < 1:
            raise ValueError(f"the mistake rate must be in [0, 1), got {rate!r}")
        self.policy, self.rate, self.seed = policy, float(rate), seed
        self.name = f"{policy.name}+mistakes"

    def act(self, conversations, infos=None, sampling=None):
        out = self.policy.act(conversations, infos, **({"sampling": sampling} if sampling else {}))
        for i, conversation in enumerate(conversations):
            turn = sum(1 for m in conversation if m["role"] == "assistant")
            key = next((m["content"] for m in conversation if m["role"] == "user"), "")
            if turn in injected_turns(self.seed, key, turn + 1, self.rate)[-1:]:
                receptacles = room_receptacles(conversation)
                if receptacles:
                    action = mistake(receptacles, _draw(self.seed, key, f"{turn}/mistake"))
                    out[i] = Completion(format_turn(expert_thought(action), action), injected=True)
        return out

    def describe(self):
        return {**self.policy.describe(), "mistake_rate": self.rate, "mistake_seed": self.seed}

    def close(self):
        self.policy.close()

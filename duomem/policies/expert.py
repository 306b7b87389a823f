"""alfworld's handcoded expert as an oracle policy (the CPU stand-in for the 72B teacher).

It reads the plan the environment computes (`expert_plan`), so it needs no model. Its thought is
a fixed template, so trajectories it produces have the same "Thought: / Action:" shape as an LLM's.
The environment seeds the expert's `random` per episode, which makes runs repeat exactly.
"""

from ..prompts import format_turn
from .base import Completion, Policy


class ExpertPolicy(Policy):
    name = "expert"
    needs_expert_plan = True

    def act(self, conversations, infos=None):
        if infos is None or len(infos) != len(conversations):
            raise ValueError("the expert policy needs the environment infos of every episode")
        out = []
        for info in infos:
            plan = info.get("expert_plan") or []
            action = plan[0] if plan else "look"
            thought = f"The next step of my plan is to {action}." if plan else "I am unsure, so I look around."
            out.append(Completion(format_turn(thought, action)))
        return out

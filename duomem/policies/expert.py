"""alfworld's handcoded expert as an oracle policy (the CPU stand-in for the 72B teacher).

It reads the plan the environment computes (`expert_plan`), so it needs no model. Its thought is
written from a template per command, so its trajectories have the same "Thought: / Action:" shape
as an LLM's and make readable demonstrations. The environment seeds the expert's `random` per
episode, which makes runs repeat exactly.
"""

import re

from ..env import NOTHING_HAPPENS
from ..prompts import format_turn
from .base import Completion, Policy

_TEMPLATES = [
    (r"^go to (.+)$", "I go to the {0} to look for what the task needs there."),
    (r"^open (.+)$", "The {0} is closed; I open it to see inside."),
    (r"^close (.+)$", "Nothing I need is in the {0}; I close it and keep searching."),
    (r"^take (.+) from (.+)$", "The {0} is here; I take it from the {1}."),
    (r"^move (.+) to (.+)$", "I have the {0}; I put it in/on the {1} as the task asks."),
    (r"^heat (.+) with (.+)$", "I heat the {0} with the {1}."),
    (r"^cool (.+) with (.+)$", "I cool the {0} with the {1}."),
    (r"^clean (.+) with (.+)$", "I clean the {0} with the {1}."),
    (r"^use (.+)$", "I turn on the {0} to look at the object under its light."),
    (r"^examine (.+)$", "I examine the {0}."),
    (r"^look$", "I look around to see where I am and what is near."),
    (r"^inventory$", "I check what I am carrying."),
]


def expert_thought(action):
    for pattern, template in _TEMPLATES:
        m = re.match(pattern, action)
        if m:
            return template.format(*m.groups())
    return f"I {action}."


class ExpertPolicy(Policy):
    name = "expert"
    needs_expert_plan = True

    def act(self, conversations, infos=None, sampling=None):
        """`sampling` is ignored: the environment seeds the expert's own choices per episode."""
        if infos is None or len(infos) != len(conversations):
            raise ValueError("the expert policy needs the environment infos of every episode")
        out = []
        for conversation, info in zip(conversations, infos):
            plan = info.get("expert_plan") or []
            action = plan[0] if plan else "look"
            thought = expert_thought(action)
            if conversation and conversation[-1]["content"].strip() == NOTHING_HAPPENS:
                # only after an injected mistake (duomem.policies.perturbed): say what went wrong
                thought = f"That command did not work. {thought}"
            out.append(Completion(format_turn(thought, action)))
        return out

"""alfworld's handcoded expert as an oracle policy (the CPU stand-in for the 72B teacher).

It reads the plan the environment computes (`expert_plan`), so it needs no model. Its thought is
written from the expert's own state (`expert_state`, `reasoned_thought`: the plan, what it looks
for, where it goes next, where it saw what it needs), or from a template per command where no state
is given, so its trajectories have the same "Thought: / Action:" shape as an LLM's and make
demonstrations a student can learn the reasons from. The environment seeds the expert's `random`
per episode, which makes runs repeat exactly.
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


_TOOL_VERB = {"microwave": "heat", "fridge": "cool", "sinkbasin": "clean", "bathtubbasin": "clean"}
_TASK_TOOL = {"pick_heat_then_place_in_recep": "microwave", "pick_cool_then_place_in_recep": "fridge",
              "pick_clean_then_place_in_recep": "sinkbasin"}


def _cls(name):
    return name.rsplit(" ", 1)[0] if name.rsplit(" ", 1)[-1].isdigit() else name


def _after_take(s):
    """What comes after taking the object, in the words of the plan."""
    if s["task_type"] == "look_at_obj_in_light":
        return f"I find a {s['light']} and use it"
    tool = _TASK_TOOL.get(s["task_type"])
    if tool:
        return f"I {_TOOL_VERB[tool]} it with a {tool}"
    return f"I put it in/on a {s['place']}"


def plan_thought(s):
    """The first turn: the task's steps, as ReAct's ALFWorld demonstrations begin. It first repeats
    the task word for word (`s["task"]`, where the policy read it): the object and place of the plan
    then stand a few tokens back, and the 135M student, which wrote the MemP reference trajectory's
    ("heat some apple and put it in garbagecan") into its plan for "put a hot mug in cabinet", copies
    them from its own task instead."""
    obj, place = s["object"], s["place"]
    # without the task (a state from elsewhere) the plan keeps its first words; with it, a shorter
    # "Plan:" keeps the turn within the CPU default's 48 new tokens
    start = f"Task: {s['task']}. Plan: take a {obj}" if s.get("task") else f"I need to find and take a {obj}"
    if s["task_type"] == "look_at_obj_in_light":
        return f"{start}, then find a {s['light']} and use it."
    if s["task_type"] == "pick_two_obj_and_place":
        return f"{start}, put it in/on a {place}, then a second {obj}."
    tool = _TASK_TOOL.get(s["task_type"])
    middle = f", {_TOOL_VERB[tool]} it with a {tool}" if tool else ""
    return f"{start}{middle}, then put it in/on a {place}."


_TASK_LINE = re.compile(r"Your task is to: ([^\n]+?)\.?\s*$", re.M)


def task_text(conversation):
    """The task as the environment worded it, from the latest message that states one."""
    for message in reversed(conversation):
        m = _TASK_LINE.search(message["content"])
        if m:
            return m.group(1)
    return ""


def _search_thought(target, place, s):
    """A search step: what it looks for, where it goes now, the receptacle it checks after this one
    (by name, so that the next search step copies it from here instead of working it out from the
    room's list: the 135M student looped back to "drawer 2" after "drawer 1" when the thought named
    only classes), and the receptacle classes after those two."""
    rest = [name for name in s["to_check"] if name != place]
    if not rest:
        return f"I look for a {target}. Next: {place}."
    after = rest[0]
    later = []
    for name in rest[1:]:
        c = _cls(name)
        if c not in (_cls(place), _cls(after)) and c not in later:
            later.append(c)
    tail = f"; later {', '.join(later[:2])}" if later else ""
    return f"I look for a {target}. Next: {place}, then {after}{tail}."


def reasoned_thought(action, s):
    """The expert's thought for `action`, written from what it knows (`s`, duomem.env.expert_state):
    the plan at the start, the search order while it searches, where it saw what it needs, the
    next step after each part of the task. Every fact in it is one the agent has read in the task
    and the observations, so a student can learn to write it, and the thought carries the state a
    small model loses in a long history: what it looks for and where it goes next."""
    sub, target = s["subgoal"], s["target"]
    # alfworld's expert never drops what it moved ("move" is 0.4's "put"): the last taken is held
    held = s["holding"][-1] if s["holding"] else ""
    if action == "look":
        return plan_thought(s) if s["first"] else "I look around."
    verb, _, rest = action.partition(" ")
    if action.startswith("go to "):
        place = action[len("go to "):]
        if sub == "find" and held and _cls(held) != s["object"]:
            return f"The {held} is not what I need; I bring it back to the {place}."
        if sub == "goto":
            return f"Now I {_TOOL_VERB.get(target, 'use')} the {held} with the {place}; I go there."
        if sub == "find" and target == s["place"] and held:
            return f"Now I put the {held} in/on a {target}; I go to the {place}."
        if s["seen_at"] == place:
            return f"I need a {target}; I saw one at the {place}, so I go there."
        return _search_thought(target, place, s)
    if verb == "open":
        if sub == "find" and target != s["place"]:
            return f"The {rest} is closed; I open it to look for a {target}."
        return f"The {rest} is closed; I open it."
    if verb == "close":
        if sub == "find" and target != s["place"]:
            return f"There is no {target} in the {rest}; I close it."
        return f"I close the {rest}."
    if verb == "take":
        obj, _, place = rest.partition(" from ")
        if s["task_type"] == "pick_two_obj_and_place" and s["subgoal_index"] >= 4:
            return f"I take the second {_cls(obj)}, {obj}. Then I put it in/on a {s['place']}."
        return f"I take the {obj}. Then {_after_take(s)}."
    if verb == "move":
        obj, _, place = rest.partition(" to ")
        if _cls(obj) != s["object"]:
            return f"The {obj} is not what I need; I put it back."
        if s["task_type"] == "pick_two_obj_and_place" and s["subgoal_index"] < 4:
            return f"I put the {obj} in/on the {place}. Then I look for a second {s['object']}."
        return f"I put the {obj} in/on the {place}, and the task is done."
    if verb in ("heat", "cool", "clean"):
        obj, _, tool = rest.partition(" with ")
        return f"I {verb} the {obj} with the {tool}. Then I put it in/on a {s['place']}."
    if verb == "use":
        return f"I turn on the {rest} to look at the {held or s['object']} under its light."
    if verb == "examine":
        return f"I do not see a {target} yet; I examine the {rest}."
    return expert_thought(action)


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
            state = info.get("expert_state")
            if state and state.get("first"):
                state = dict(state, task=task_text(conversation))
            thought = reasoned_thought(action, state) if state else expert_thought(action)
            if conversation and conversation[-1]["content"].strip() == NOTHING_HAPPENS:
                # only after an injected mistake (duomem.policies.perturbed): say what went wrong
                thought = f"That command did not work. {thought}"
            out.append(Completion(format_turn(thought, action)))
        return out

"""The expert's reasoned thoughts (duomem.policies.expert.reasoned_thought): written from the
handcoded expert's state (duomem.env.expert_state), they say the plan, what it looks for, where it
goes now and after that, which receptacle classes follow, where it saw what it needs, and the next part of
the task. Checked on made-up states and against what the expert then does on real train games."""

import re

from duomem.agent import run_episodes
from duomem.data import build_manifest
from duomem.env import EnvPool
from duomem.policies.expert import ExpertPolicy, plan_thought, reasoned_thought, task_text


def _state(**kw):
    s = {"first": False, "task_type": "pick_and_place_simple", "object": "pen", "place": "drawer", "light": "",
         "subgoal": "find", "target": "pen", "subgoal_index": 0, "to_check": [], "seen_at": "",
         "holding": []}
    s.update(kw)
    return s


def test_the_first_turn_states_the_plan_of_each_task_type():
    assert plan_thought(_state()) == "I need to find and take a pen, then put it in/on a drawer."
    assert "heat it with a microwave, then put it in/on a drawer" in plan_thought(
        _state(task_type="pick_heat_then_place_in_recep"))
    assert "clean it with a sinkbasin" in plan_thought(_state(task_type="pick_clean_then_place_in_recep"))
    assert "cool it with a fridge" in plan_thought(_state(task_type="pick_cool_then_place_in_recep"))
    assert "then find a desklamp and use it" in plan_thought(
        _state(task_type="look_at_obj_in_light", place="", light="desklamp"))
    assert "second pen" in plan_thought(_state(task_type="pick_two_obj_and_place"))
    assert reasoned_thought("look", _state(first=True)) == plan_thought(_state())
    # where the policy read the task, the plan repeats it word for word first
    assert plan_thought(_state(task="put some pen on drawer")) == \
        "Task: put some pen on drawer. Plan: take a pen, then put it in/on a drawer."
    assert plan_thought(_state(task_type="pick_two_obj_and_place", task="put two pen in drawer")) == \
        "Task: put two pen in drawer. Plan: take a pen, put it in/on a drawer, then a second pen."


def test_the_task_is_read_from_the_latest_message_that_states_one():
    reference = {"role": "user", "content": "You are in a room.\n\nYour task is to: heat some apple and put it in garbagecan."}
    own = {"role": "user", "content": "You are in a kitchen.\n\nYour task is to: put a hot mug in cabinet.\n\nScripts: ..."}
    assert task_text([reference, {"role": "assistant", "content": "Thought: x\nAction: look"}, own]) == \
        "put a hot mug in cabinet"
    assert task_text([{"role": "user", "content": "You arrive at shelf 1."}]) == ""
    assert reasoned_thought("look", _state()) == "I look around."


def test_a_search_step_names_this_receptacle_the_one_after_it_and_the_classes_after_those():
    s = _state(to_check=["shelf 2", "shelf 1", "desk 2", "desk 1", "bed 1", "drawer 2", "garbagecan 1"])
    assert reasoned_thought("go to shelf 2", s) == "I look for a pen. Next: shelf 2, then shelf 1; later desk, bed."
    # the last instance of a class: the one after it is the next class's highest, named in full
    s = _state(to_check=["shelf 1", "desk 2", "desk 1", "bed 1", "drawer 2", "garbagecan 1"])
    assert reasoned_thought("go to shelf 1", s) == "I look for a pen. Next: shelf 1, then desk 2; later bed, drawer."
    s = _state(to_check=["desk 1", "bed 1"])
    assert reasoned_thought("go to desk 1", s) == "I look for a pen. Next: desk 1, then bed 1."
    s = _state(to_check=["bed 1"])
    assert reasoned_thought("go to bed 1", s) == "I look for a pen. Next: bed 1."
    # a place it has seen the target at: go straight there
    s = _state(task_type="look_at_obj_in_light", subgoal="find", target="desklamp", seen_at="shelf 3",
               to_check=["shelf 3"], holding=["pen 1"])
    assert reasoned_thought("go to shelf 3", s) == "I need a desklamp; I saw one at the shelf 3, so I go there."


def test_thoughts_after_taking_name_the_next_part_of_the_task():
    heat = _state(task_type="pick_heat_then_place_in_recep", subgoal="take")
    assert reasoned_thought("take pen 1 from desk 1", heat) == "I take the pen 1. Then I heat it with a microwave."
    assert reasoned_thought("go to microwave 1", _state(subgoal="goto", target="microwave", holding=["pen 1"])) == \
        "Now I heat the pen 1 with the microwave 1; I go there."
    put = _state(subgoal="find", target="drawer", holding=["pen 1"], to_check=["drawer 2", "drawer 1"])
    assert reasoned_thought("go to drawer 2", put) == "Now I put the pen 1 in/on a drawer; I go to the drawer 2."
    assert reasoned_thought("close drawer 2", put) == "I close the drawer 2."
    assert reasoned_thought("close drawer 2", _state(to_check=["drawer 1"])) == \
        "There is no pen in the drawer 2; I close it."
    two = _state(task_type="pick_two_obj_and_place", subgoal="put", subgoal_index=3)
    assert reasoned_thought("move pen 1 to drawer 2", two).endswith("Then I look for a second pen.")
    two_second = _state(task_type="pick_two_obj_and_place", subgoal="take", subgoal_index=5)
    assert reasoned_thought("take pen 2 from desk 1", two_second).startswith("I take the second pen, pen 2.")
    assert reasoned_thought("move pencil 1 to desk 1", _state(holding=["pencil 1"])) == \
        "The pencil 1 is not what I need; I put it back."


def test_real_games_the_thought_says_where_the_expert_goes_and_what_comes_next(data_root):
    tasks = build_manifest(data_root, "train", per_task_type=3, seed=0)
    with EnvPool(2, max_steps=30, expert="descending") as pool:
        records = run_episodes(tasks, ExpertPolicy(), pool, data_root, 30, seed=0)
    assert sum(r["won"] for r in records) >= 13  # the thoughts change no command: ~0.8 of train games
    checked = followed = 0
    for r in records:
        turns = r["turns"]
        assert turns[0]["completion"].startswith(f"Thought: Task: {r['task']}. Plan: take a ")
        for i, t in enumerate(turns):
            thought = t["completion"].split("\nAction:")[0]
            m = re.match(r"Thought: I look for a (\w+)\. Next: ([\w ]+?)(?:, then ([\w ]+?))?(?:; later [\w, ]+)?\.$",
                         thought)
            if not m:
                continue
            assert t["action"] == f"go to {m.group(2)}"
            assert m.group(1) in r["task"] or m.group(1) == "desklamp"
            if not m.group(3):
                continue
            # where it goes next, within this search, is the receptacle the thought named after this one
            # (unless the expert re-plans: alfworld's plays "look" for a command it cannot send)
            for later in turns[i + 1:]:
                if later["action"].split()[0] in ("take", "look", "examine", "inventory", "help"):
                    break
                if later["action"].startswith("go to "):
                    checked += 1
                    followed += later["action"] == f"go to {m.group(3)}"
                    break
    assert checked >= 10 and followed >= 0.9 * checked

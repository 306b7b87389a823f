import pytest

from duomem.parsing import MAX_ACTION_CHARS, parse_action


@pytest.mark.parametrize("text, action, problem", [
    ("Thought: I need the apple.\nAction: go to countertop 1", "go to countertop 1", None),
    ("thought: x\nACTION:   Go To  Desk 2.", "go to desk 2", None),
    ("Thought: x\n**Action:** `take apple 1 from countertop 1`", "take apple 1 from countertop 1", None),
    ("Thought: x\nAction: open fridge 1\nAction: take egg 1 from fridge 1", "", "multiple_actions"),
    ("Thought: x\nAction: open fridge 1\nAction: Open fridge 1.", "open fridge 1", "repeated_action"),
    ("go to shelf 3", "go to shelf 3", "no_action_prefix"),
    ("Thought: old grammar\nAction: put apple 1 in/on countertop 2", "move apple 1 to countertop 2", None),
    ("Thought: x\nAction: put mug 1 in coffeemachine 1", "move mug 1 to coffeemachine 1", None),
    ("Action：look", "look", None),  # full-width colon
])
def test_well_formed_and_odd_actions(text, action, problem):
    assert parse_action(text) == (action, problem)


@pytest.mark.parametrize("text, problem", [
    ("", "empty"),
    ("   \n\t ", "empty"),
    ("I think I should look around the room and then find the apple.\nMaybe the fridge.", "no_action"),
    ("Thought: hmm\nAction:", "empty_action"),
    ("Thought: hmm\nAction: " + "go to " * 100, "overlong"),
    ("x" * 10_000, "no_action"),
    (None, "not_text"),
])
def test_garbage_is_an_empty_action_with_a_reason(text, problem):
    assert parse_action(text) == ("", problem)


def test_binary_garbage_and_other_languages_never_crash():
    garbage = bytes(range(256)).decode("latin-1") * 40
    action, problem = parse_action(garbage)
    assert action == "" and problem
    action, _ = parse_action("Thought: 我需要苹果\nAction: 去 台面 1\x00\x07")
    assert action == "去 台面 1"  # control characters stripped; the environment answers "Nothing happens."
    assert len(parse_action("Action: " + "a" * (MAX_ACTION_CHARS + 1))[0]) == 0

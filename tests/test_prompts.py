import pytest

from duomem.prompts import MEMORY_HEADER, SYSTEM_PROMPT, initial_conversation

OBS = "-= Welcome to TextWorld, ALFRED! =-\n\nYou are in the middle of a room.\n\nYour task is to: put a clean apple in fridge."


def test_no_memory_layout():
    msgs = initial_conversation(OBS)
    assert [m["role"] for m in msgs] == ["system", "user"]
    assert msgs[0]["content"] == SYSTEM_PROMPT
    assert msgs[1]["content"] == OBS
    assert "move {object} to {receptacle}" in SYSTEM_PROMPT and "put" not in SYSTEM_PROMPT.split("Commands")[1].split("\n\n")[0]
    assert "Thought:" in SYSTEM_PROMPT and "Action:" in SYSTEM_PROMPT


def test_memp_layout_reference_then_task_with_memories():
    ref = [{"role": "user", "content": "ref obs"}, {"role": "assistant", "content": "Thought: a\nAction: look"},
           {"role": "user", "content": "You see nothing."}, {"role": "assistant", "content": "Thought: b\nAction: go to desk 1"}]
    msgs = initial_conversation(OBS, reference=ref, scripts=["heat then place", "find, take, clean"])
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user", "assistant", "user"]
    first = msgs[-1]["content"]
    assert first.startswith(OBS)
    assert MEMORY_HEADER in first and "Memory 1: heat then place" in first and "Memory 2: find, take, clean" in first


def test_reference_must_alternate_from_user():
    with pytest.raises(ValueError):
        initial_conversation(OBS, reference=[{"role": "assistant", "content": "x"}])

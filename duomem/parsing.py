"""Turn a model completion into one ALFWorld command, whatever the model wrote."""

import re
import unicodedata

VERBS = ("go to", "open", "close", "take", "move", "put", "examine", "use", "heat", "clean", "cool",
         "look", "inventory", "help")
MAX_ACTION_CHARS = 100

_ACTION_LINE = re.compile(r"^[\s>*#`_-]*action\s*[*_`]*\s*[:：]\s*(.*)$", re.IGNORECASE | re.MULTILINE)
_PUT = re.compile(r"^put (.+?) (?:in|on|into|onto|in/on) (.+)$")


def _clean(action):
    action = "".join(c for c in action if unicodedata.category(c)[0] != "C" or c == " ")
    action = action.strip(" \t`*\"'")
    action = re.sub(r"\s+", " ", action).lower()
    action = action.rstrip(".!;,:?").strip()
    # The pre-0.4 grammar's "put X in/on Y" is "move X to Y" in alfworld 0.4.
    put = _PUT.match(action)
    if put:
        action = f"move {put.group(1)} to {put.group(2)}"
    return action


def parse_action(completion):
    """Return (action, problem). `action` is "" when nothing usable was found; `problem` names why
    (None when the completion had exactly one well-formed action line)."""
    if not isinstance(completion, str):
        return "", "not_text"
    text = completion.replace("\r", "\n")
    if not text.strip():
        return "", "empty"
    lines = _ACTION_LINE.findall(text)
    problem = None
    if lines:
        raw = next((line for line in lines if line.strip()), "")
        # Several different commands in one turn: which one was meant is a guess, so none is played.
        # (Backends end a turn after its first action line, as a stop sequence does.)
        if len({_clean(line) for line in lines if line.strip()}) > 1:
            return "", "multiple_actions"
        if len(lines) > 1:
            problem = "repeated_action"
    else:
        # A bare command on one line ("go to desk 1") is accepted; prose is not.
        stripped = text.strip()
        first = _clean(stripped.splitlines()[0])
        if "\n" not in stripped and first.startswith(VERBS):
            raw, problem = stripped, "no_action_prefix"
        else:
            return "", "no_action"
    action = _clean(raw)
    if not action:
        return "", "empty_action"
    if len(action) > MAX_ACTION_CHARS:
        return "", "overlong"
    return action, problem

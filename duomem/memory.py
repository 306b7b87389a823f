"""Procedural memories (MemP style): one short script per successful trajectory, m = f_extract(τ; θ).

Two extractors: an LLM with the ALFWorld extraction prompt below (the student's own bank, or the
teacher's for CD), and, when the teacher is alfworld's oracle expert (no LLM), a deterministic
key-step summariser named for what it is: `expert-keysteps`.
"""

import re

from .data import DataError


KEYSTEPS_METHOD = "expert-keysteps (deterministic summary of the expert trajectory's key actions; no LLM)"

EXTRACT_SYSTEM = """You write procedural memories for a household agent in ALFWorld, a text game.
Its commands are: go to {receptacle}, open {receptacle}, close {receptacle}, take {object} from {receptacle}, move {object} to {receptacle}, examine {something}, use {object}, heat {object} with {receptacle}, clean {object} with {receptacle}, cool {object} with {receptacle}, look, inventory."""

EXTRACT_INSTRUCTION = """Below is a successful episode for the task "{task}".

{episode}

Summarise it as a reusable procedural script of at most 70 words, in exactly this form:
When: <the kind of task this applies to, in general words>
Workflow: <the key actions in order, as commands with general object names, separated by " -> ">
Leave out failed searches and anything that does not help with similar tasks."""

_NUMBER = re.compile(r" \d+\b")


def episode_text(trajectory):
    """A trajectory as plain text: the actions and the environment's answers, no thoughts."""
    lines = [trajectory["messages"][0]["content"].split("\n\n", 1)[-1]]
    for action, msg in zip(trajectory["actions"], trajectory["messages"][2::2]):
        lines.append(f"> {action}\n{msg['content']}")
    return "\n".join(lines)


def extraction_conversation(trajectory):
    return [{"role": "system", "content": EXTRACT_SYSTEM},
            {"role": "user", "content": EXTRACT_INSTRUCTION.format(task=trajectory["task"],
                                                                   episode=episode_text(trajectory))}]


def clean_script(text, max_words=120):
    """An LLM's script, trimmed of a thinking block and of anything past the word limit."""
    text = re.sub(r"<think>.*?</think>", "", text or "", flags=re.DOTALL).strip()
    words = text.split()
    return " ".join(words[:max_words]) if len(words) > max_words else text


def keystep_script(trajectory):
    """The expert's trajectory reduced to what solved it: the search is one phrase, then every
    action from the first `take` on, with instance numbers dropped so it transfers to other rooms."""
    skip = set(trajectory.get("injected_steps") or ())  # injected mistakes are no part of the solution
    actions = [a for i, a in enumerate(trajectory["actions"], 1) if i not in skip]
    first_take = next((i for i, a in enumerate(actions) if a.startswith("take ")), len(actions))
    key = []
    for a in actions[first_take:]:
        a = _NUMBER.sub("", a)
        if a.startswith(("close ", "look", "inventory", "examine ")) or (key and key[-1] == a):
            continue
        key.append(a)
    target = key[0][len("take "):].split(" from ")[0] if key else "the object"
    where = key[0].split(" from ")[-1] if key and " from " in key[0] else "a receptacle"
    kind = trajectory["task_type"].replace("_", " ")
    steps = [f"go to likely places (open closed ones) until a {target} is seen"] + key
    return (f"When: a task like \"{trajectory['task']}\" ({kind}); the {target} was found at a {where}. "
            f"Workflow: " + " -> ".join(steps))


MAX_EMPTY_SCRIPTS = 0.01  # a bank with more empty scripts than this fails its job


def extraction_params(p, extract_max_new_tokens, model_max_new_tokens):
    """The extracting policy's parameters: the script is the model's answer, so thinking must not
    eat the budget. A hybrid model (`thinking` True/False) extracts with thinking switched off
    (enable_thinking false) within `extract_max_new_tokens`; a thinking-only model ("always": its
    template opens <think> itself) gets its own budget for the thinking plus the script's."""
    q = dict(p, max_new_tokens=extract_max_new_tokens)
    if isinstance(p.get("thinking"), bool):
        q["thinking"] = False
    elif p.get("thinking") == "always" and model_max_new_tokens:
        q["max_new_tokens"] = model_max_new_tokens + extract_max_new_tokens
    return q


def check_scripts(memories, where, limit=MAX_EMPTY_SCRIPTS):
    """Fail naming the empty scripts when more than `limit` of them are empty (a model cut off inside
    its thinking, or one that answered nothing): such a bank would retrieve blanks."""
    empty = [m["memory_id"] for m in memories if not m["script"].strip()]
    if len(empty) > limit * len(memories):
        shown = ", ".join(empty[:10]) + (f" and {len(empty) - 10} more" if len(empty) > 10 else "")
        raise DataError(f"{where}: {len(empty)} of {len(memories)} extracted scripts are empty (more than "
                        f"{limit:.0%}, memory.max_empty_scripts): {shown}. A thinking model cut off inside "
                        "<think>? Raise the model's max_new_tokens or memory.extract_max_new_tokens")


def build_memories(trajectories, scripts, count_tokens):
    return [{
        "memory_id": t["trajectory_id"], "task_id": t["task_id"], "task_type": t["task_type"],
        "task": t["task"], "script": s, "tokens": count_tokens(s),
    } for t, s in zip(trajectories, scripts)]


def extract_scripts(trajectories, method, policy=None, batch_size=16):
    """Scripts for every trajectory: `method` is "keysteps" or "llm" (through `policy.act`)."""
    if method == "keysteps":
        return [keystep_script(t) for t in trajectories]
    scripts = []
    for i in range(0, len(trajectories), batch_size):
        chunk = trajectories[i:i + batch_size]
        scripts += [clean_script(c.text) for c in policy.act([extraction_conversation(t) for t in chunk])]
    return scripts


def make_memory_bank(trajectories_path, out_path, method, make_policy=None, count_tokens=len, batch_size=16,
                     fingerprint_params=None, progress=True, max_empty=MAX_EMPTY_SCRIPTS):
    """Write memories.json for every trajectory; LLM extraction is logged script by script and resumes."""
    import sys

    from tqdm import tqdm

    from .episode_log import EpisodeLog, fingerprint, partial_log_path
    from .io import read_jsonl, write_json_atomic

    trajectories = read_jsonl(trajectories_path)
    if not trajectories:
        raise DataError(f"{trajectories_path} holds no successful trajectory to extract memories from; "
                        "the teacher solved nothing (raise teacher_collection.retries or max_steps)")
    log_path = partial_log_path(out_path)
    with EpisodeLog(log_path, fingerprint({"method": method, **(fingerprint_params or {})})) as log:
        done = {r["memory_id"]: r["script"] for r in log.records}
        todo = [t for t in trajectories if t["trajectory_id"] not in done]
        policy = make_policy() if (todo and method == "llm") else None
        bar = tqdm(total=len(trajectories), initial=len(done), desc="scripts", file=sys.stderr, disable=not progress)
        for i in range(0, len(todo), batch_size):
            chunk = todo[i:i + batch_size]
            for t, s in zip(chunk, extract_scripts(chunk, method, policy, batch_size)):
                log.append({"memory_id": t["trajectory_id"], "script": s})
                done[t["trajectory_id"]] = s
            bar.update(len(chunk))
        bar.close()
        if policy is not None:
            policy.close()
    memories = build_memories(trajectories, [done[t["trajectory_id"]] for t in trajectories], count_tokens)
    check_scripts(memories, f"memory bank {out_path}", max_empty)
    write_json_atomic(out_path, {"method": KEYSTEPS_METHOD if method == "keysteps" else "llm",
                                 "memories": memories})
    log_path.unlink(missing_ok=True)
    return memories


def load_memories(path):
    import json
    from pathlib import Path

    return json.loads(Path(path).read_text())["memories"]

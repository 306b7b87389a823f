"""Trajectory viewer: one self-contained HTML page per evaluation (the paper's appendix F, for any run).

The page shows each episode's prompt as the agent saw it (system message, reference trajectory,
first user message with the retrieved memory scripts; rebuilt from the same inputs the evaluation used:
duomem.prompts and the same retrieval), every thought / action / observation, and the outcome,
filterable by task type and outcome. Data and code are inline: the page loads nothing from elsewhere.
"""

import html
import json
import re
from pathlib import Path

from .data import DataError
from .io import read_jsonl, write_text_atomic
from .memory_config import context_builder, load_vectors, parse_label
from .prompts import SYSTEM_PROMPT, initial_conversation
from .viewer_page import PAGE

_THOUGHT = re.compile(r"^\s*thought\s*:\s*", re.IGNORECASE)
_ACTION = re.compile(r"^[\s>*#`_-]*action\s*[*_`]*\s*[:：]", re.IGNORECASE | re.MULTILINE)


def split_completion(text):
    """(thought, rest): the reasoning before the first `Action:` line, without its `Thought:` label."""
    m = _ACTION.search(text or "")
    thought = (text or "")[: m.start()] if m else (text or "")
    return _THOUGHT.sub("", thought).strip(), ((text or "")[m.start():].strip() if m else "")


def episode_prompts(records, memory, reference=None, memories=None, bank=None, queries=None):
    """The initial messages of every episode, rebuilt with the evaluation's context builder."""
    from .memory import load_memories
    from .references import load_references

    kind, _, _ = parse_label(memory)
    bank_vectors = query_vectors = query_ids = None
    if kind in ("script", "memp"):
        bank_vectors, _ = load_vectors(bank)
        query_vectors, query_ids = load_vectors(queries)
    context_for = context_builder(memory, records, references=load_references(Path(reference)) if reference else None,
                                  memories=load_memories(memories) if memories else None, bank_vectors=bank_vectors,
                                  query_vectors=query_vectors, query_ids=query_ids)
    prompts = []
    for r in records:
        ref, scripts = context_for(r)
        prompts.append((initial_conversation(r["first_observation"], ref, scripts), list(scripts)))
    return prompts


def _first_user(message, observation):
    """The first user message split into the environment's text and the memory block appended to it."""
    obs = observation.strip()
    if not message.startswith(obs):
        raise DataError("the rebuilt first user message does not start with the recorded first observation: "
                        "the episodes and the viewer's inputs do not belong together")
    return {"first_user_observation": obs, "first_user_memory": message[len(obs):].lstrip("\n")}


def viewer_data(records, prompts, meta):
    """What the page renders: the system prompt and reference trajectories once, then the episodes."""
    system, references, episodes = None, {}, []
    for r, (messages, scripts) in zip(records, prompts):
        if system is None:
            system = messages[0]["content"]
        if len(messages) > 2:
            references[r["task_type"]] = messages[1:-1]
        turns = []
        for t in r["turns"]:
            thought, _ = split_completion(t["completion"])
            # the raw text only where it is not the usual "Thought: … / Action: …" (it doubles the page)
            raw = "" if not t.get("problem") and t["completion"].strip().startswith("Thought:") else t["completion"]
            turns.append({"thought": thought, "completion": raw, "action": t["action"],
                          "problem": t.get("problem"), "admissible": t.get("admissible", True),
                          "observation": t.get("observation", ""), "thinking": t.get("thinking", "")})
        episodes.append({"task_id": r["task_id"], "task_type": r["task_type"], "task": r["task"],
                         "game": r["game"], "won": bool(r["won"]), "steps": r["steps"], "seconds": r["seconds"],
                         "invalid_steps": r["invalid_steps"], "reference": len(messages) > 2,
                         **_first_user(messages[-1]["content"], r["first_observation"]), "scripts": scripts,
                         "turns": turns})
    return {"meta": meta, "system": system or SYSTEM_PROMPT, "references": references, "episodes": episodes}


def render(data):
    # "<" escaped inside the JSON so no observation can close the <script> element that holds it.
    blob = json.dumps(data, sort_keys=True).replace("<", "\\u003c")
    title = html.escape(data["meta"]["title"])
    return PAGE.replace("__TITLE__", title).replace("__DATA__", blob)


def build_viewer(episodes, out_html, *, memory, provenance=None, reference=None, memories=None, bank=None,
                 queries=None, title=None):
    """Write the viewer page of one evaluation (its episodes.jsonl and the memory inputs it used)."""
    records = read_jsonl(episodes)
    prov = json.loads(Path(provenance).read_text()) if provenance else {}
    params = prov.get("params", {})
    meta = {"title": title or str(episodes), "memory": memory, "model": params.get("model"),
            "adapter": params.get("adapter"), "adapter_path": params.get("adapter_path"),
            "split": params.get("split"), "max_steps": params.get("max_steps"),
            "summary": prov.get("summary", {}), "protocol": prov.get("protocol", {})}
    prompts = episode_prompts(records, memory, reference, memories, bank, queries)
    page = render(viewer_data(records, prompts, meta))
    write_text_atomic(out_html, page)
    return page

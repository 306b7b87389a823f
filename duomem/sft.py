"""SFT data for parameter-space distillation (paper §3.3, §5.5).

Each successful teacher trajectory (o1, a1, ..., oT, aT) becomes chat samples laid out exactly as the
agent's chat at inference (duomem.prompts.initial_conversation): system prompt, first observation
(room description e + task d), then assistant (thought + action) / user (observation) turns. The loss
falls on teacher assistant turns only.

Input strategies (§3.3 "Input Strategies", §5.5), named as in result paths:
- "full":   one multi-turn sample per trajectory, loss on every assistant turn: the §3.3 samples
            x_i = [s; e; o1, a1, ..., o_{i-1}, a_{i-1}, o_i] -> a_i, all T of them in one sequence.
- "latest": one sample per step; the initial context plus only the most recent turn.
- "last5":  one sample per step; the initial context plus the five most recent turns.
A "turn" of history is one (action, observation) pair: the latest observation comes with the action
that produced it ("Nothing happens." means nothing without it), and user/assistant roles keep
alternating, which Gemma's chat templates require.
"""

import json
from pathlib import Path

from .data import DataError
from .errors import ConfigError
from .io import write_jsonl_atomic
from .models import ModelError
from .prompts import initial_conversation

STRATEGIES = {"full": None, "latest": 1, "last5": 5}  # history window in turns; None = everything
IGNORE_INDEX = -100  # label of a token without loss (the value transformers' loss ignores)


class TemplateError(ModelError):
    """The chat template cannot be split into per-turn spans consistently."""


class PrefixMismatch(TemplateError):
    """The template renders a turn's prompt differently inside the whole conversation (Qwen3's hybrid
    template writes an empty <think></think> into the generation prompt and the last assistant turn
    only): one sequence cannot carry every turn's loss, one sequence per turn can."""


def check_strategy(strategy):
    if strategy not in STRATEGIES:
        raise ConfigError(f"unknown SFT input strategy {strategy!r}; allowed: {', '.join(STRATEGIES)}")


def _episode(record, where):
    """The trajectory's first observation and its turns after it: a1, o2, a2, ..., aT (user/assistant
    alternating). The environment's answer to the last (winning) action has nothing to learn and is dropped."""
    msgs = record.get("messages")
    if not isinstance(msgs, list) or not msgs:
        raise DataError(f"{where}: trajectory has no messages")
    roles = [m.get("role") for m in msgs]
    if any(r != ("user" if i % 2 == 0 else "assistant") for i, r in enumerate(roles)):
        raise DataError(f"{where}: messages must alternate user/assistant, user first (got {roles[:6]}...)")
    turns = [{"role": m["role"], "content": m["content"]} for m in msgs[1:]]
    if turns and turns[-1]["role"] == "user":
        turns.pop()
    if not turns:
        raise DataError(f"{where}: trajectory has no assistant turn")
    return msgs[0]["content"], turns


def trajectory_samples(record, strategy, reference=None, where="trajectory", scripts=()):
    """The SFT samples of one trajectory: dicts with `messages` and `train_on` (indices of the
    assistant messages that carry loss) and `step` (1-based step of the target; None for "full").
    `reference` and `scripts` put a memory block in the prompt as the agent does (duomem.sft_memory)."""
    check_strategy(strategy)
    first, turns = _episode(record, where)
    init = initial_conversation(first, reference, scripts)
    untrained = set(record.get("injected_steps") or ())  # mistakes put in the teacher's place: context only
    if STRATEGIES[strategy] is None:
        messages = init + turns
        train_on = [i for i in range(len(init), len(messages), 2) if (i - len(init)) // 2 + 1 not in untrained]
        return [{"step": None, "messages": messages, "train_on": train_on}] if train_on else []
    window, samples = STRATEGIES[strategy], []
    for k in range(0, len(turns), 2):  # turns[k] is the assistant turn of step k // 2 + 1
        if k // 2 + 1 in untrained:
            continue
        history = turns[max(0, k - 2 * window):k]  # the last `window` (action, observation) pairs
        messages = init + history + [turns[k]]
        samples.append({"step": k // 2 + 1, "messages": messages, "train_on": [len(messages) - 1]})
    return samples


def read_trajectories(path):
    path = Path(path)
    if not path.exists():
        raise DataError(f"teacher trajectories file {path} does not exist")
    records = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise DataError(f"{path}:{n}: not a JSON record ({e})") from None
    if not records:
        raise DataError(f"teacher trajectories file {path} holds no trajectories: nothing to train on")
    return records


def build_sft_dataset(trajectories_path, out_path, strategy, *, with_reference=False, references=None):
    """Write the SFT samples of every successful trajectory to `out_path` (JSONL, atomically).

    The training prompt has no memory block and, by default, no reference trajectory: paper §3.3
    defines the input as [s; e; o1, a1, ..., o_i] (system prompt, environment, history only), and §5.4
    reads the LoRA gain as "procedural competence even without any memory" (the No-Memory+LoRA
    setting). `with_reference=True` prepends the task type's reference trajectory (the "Trajectory"
    memory) from `references` ({task_type: turns}; default the repository's references).
    """
    check_strategy(strategy)
    trajectories = read_trajectories(trajectories_path)
    if with_reference and references is None:
        from .references import load_references

        references = load_references()
    records, skipped = [], 0
    for n, t in enumerate(trajectories, 1):
        where = f"{trajectories_path}:{n} ({t.get('trajectory_id', '?')})"
        if t.get("won") is False:  # collect keeps wins only; guard against other producers
            skipped += 1
            continue
        reference = None
        if with_reference:
            if t.get("task_type") not in references:
                raise DataError(f"{where}: no reference trajectory for task type {t.get('task_type')!r}")
            reference = references[t["task_type"]]
        for s in trajectory_samples(t, strategy, reference, where):
            records.append({"trajectory_id": t.get("trajectory_id"), "task_id": t.get("task_id"),
                            "task_type": t.get("task_type"), "strategy": strategy, **s})
    write_jsonl_atomic(out_path, records)
    return {"strategy": strategy, "with_reference": bool(with_reference), "trajectories": len(trajectories) - skipped,
            "skipped_unsuccessful": skipped, "samples": len(records),
            "trained_turns": sum(len(r["train_on"]) for r in records)}


def read_sft(path):
    """The records of an SFT file written by build_sft_dataset (clear error when empty or malformed)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"SFT dataset {path} does not exist")
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if not records:
        raise DataError(f"SFT dataset {path} holds no samples")
    for n, r in enumerate(records, 1):
        if not isinstance(r.get("messages"), list) or not r.get("train_on"):
            raise DataError(f"{path}:{n}: an SFT record needs `messages` and a non-empty `train_on`")
    return records


def _special_strings(tokenizer):
    specials = set(tokenizer.all_special_tokens)
    specials |= {t.content for t in tokenizer.added_tokens_decoder.values() if t.special}
    return [s for s in specials if s]


def assistant_spans(tokenizer, messages, train_on, chat_template_kwargs=None):
    """The rendered conversation and, per trained assistant turn, the character span of its content
    plus its end-of-turn token, found by rendering prefixes (works without {% generation %} markers).

    The span starts where the generation prompt for that turn ends (so the "<|im_start|>assistant\\n"
    header is excluded) and ends after the first special token following the content (<|im_end|>,
    <end_of_turn>, <|eot_id|>...), so the model learns to stop; the newline after it is excluded.
    """
    kw = dict(chat_template_kwargs or {})
    render = lambda msgs, gen=False: tokenizer.apply_chat_template(  # noqa: E731
        msgs, tokenize=False, add_generation_prompt=gen, **kw)
    text = render(messages)
    specials = _special_strings(tokenizer)
    spans, last_end = [], 0
    for i in sorted(train_on):
        if not 0 < i < len(messages) or messages[i]["role"] != "assistant":
            raise ValueError(f"train_on index {i} is not an assistant message of this conversation")
        prompt = render(messages[:i], gen=True)
        if not text.startswith(prompt) or len(prompt) < last_end:
            raise PrefixMismatch(
                f"the chat template renders the conversation up to message {i} (with its generation prompt) "
                "differently from the same messages inside the whole conversation, so per-turn loss masks "
                "cannot be cut from one sequence")
        start, content = len(prompt), messages[i]["content"]
        for c in (content, content.strip()):  # some templates trim the content
            if c and text.startswith(c, start):
                break
        else:
            raise TemplateError(f"the chat template inserts text between the generation prompt and the content "
                                f"of assistant message {i}: {text[start:start + 40]!r}")
        content_end = start + len(c)
        hits = [(text.find(s, content_end), s) for s in specials]
        hits = [(p, s) for p, s in hits if p >= 0]
        if not hits:
            raise TemplateError(f"no end-of-turn special token after assistant message {i}")
        pos, token = min(hits)
        if text[content_end:pos].strip():
            raise TemplateError(f"the chat template puts {text[content_end:pos]!r} between assistant message {i} "
                                f"and its end-of-turn token {token!r}")
        spans.append((start, pos + len(token)))
        last_end = pos + len(token)
    return text, spans


def tokenize_with_assistant_mask(tokenizer, messages, train_on, chat_template_kwargs=None):
    """input_ids of the whole rendered conversation (tokenised in one piece, as at inference, without
    added BOS/EOS: the template holds its own) and labels equal to them on the trained assistant
    turns (content + end-of-turn token) and IGNORE_INDEX everywhere else."""
    if not tokenizer.is_fast:
        raise ModelError("loss masks need a fast tokenizer (character offsets)")
    text, spans = assistant_spans(tokenizer, messages, train_on, chat_template_kwargs)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, labels = enc["input_ids"], [IGNORE_INDEX] * len(enc["input_ids"])
    for a, b in spans:
        covered = []
        for t, (s, e) in enumerate(enc["offset_mapping"]):
            if e <= a or s >= b or s == e:
                continue
            if s < a or e > b:
                raise TemplateError(f"token {tokenizer.convert_ids_to_tokens(ids[t])!r} straddles the border of "
                                    f"an assistant turn ({text[max(0, s - 10):e + 10]!r})")
            labels[t] = ids[t]
            covered.append((s, e))
        if not covered or covered[0][0] != a or covered[-1][1] != b:
            raise TemplateError(f"the tokens do not cover the assistant turn {text[a:b]!r} exactly")
    return {"input_ids": ids, "labels": labels}


def tokenize_sample(tokenizer, messages, train_on, chat_template_kwargs=None):
    """The training sequences of one SFT record. One sequence with loss on every trained assistant
    turn when the template renders each turn's prompt as a prefix of the whole conversation; else
    (PrefixMismatch) one sequence per trained turn, ending with it: the same full-history window,
    each rendered exactly as the agent's prompt at that step (costs more tokens, never a wrong one)."""
    try:
        return [tokenize_with_assistant_mask(tokenizer, messages, train_on, chat_template_kwargs)]
    except PrefixMismatch:
        return [tokenize_with_assistant_mask(tokenizer, messages[:i + 1], [i], chat_template_kwargs)
                for i in sorted(train_on)]


PROBE_TURNS = [{"role": "user", "content": "You are in a room.\n\nYour task is to: look."},
               {"role": "assistant", "content": "Thought: I look.\nAction: look"},
               {"role": "user", "content": "You see a desk 1."},
               {"role": "assistant", "content": "Thought: I go there.\nAction: go to desk 1"}]


def check_template(tokenizer, chat_template_kwargs=None):
    """Raise TemplateError when the SFT builder cannot cut loss masks from this tokenizer's chat
    template (with these arguments): a probe conversation in the agent's layout, loss on both turns."""
    from .prompts import SYSTEM_PROMPT

    messages = [{"role": "system", "content": SYSTEM_PROMPT}] + PROBE_TURNS
    tokenize_sample(tokenizer, messages, [2, 4], chat_template_kwargs)

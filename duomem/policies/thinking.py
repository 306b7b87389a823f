"""Qwen3-style thinking blocks: `<think>…</think>` before the answer.

The thinking text is kept out of the conversation history (the Qwen3 model card: "the historical
model output should only include the final output part") but goes into the episode log. Two shapes
occur: the hybrid Qwen3 models write `<think>…</think>` themselves; the Thinking-2507 templates
already end the generation prompt with `<think>`, so the output holds only the closing tag. A
completion cut off inside its thinking has no closing tag at all: then everything is thinking.
"""

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"


def opens_thinking(prompt):
    """True when a rendered prompt ends inside an unclosed thinking block (the model starts thinking)."""
    return prompt.rfind(THINK_OPEN) > prompt.rfind(THINK_CLOSE)


def _split(text, started):
    close = text.find(THINK_CLOSE)
    if close >= 0:
        head, answer = text[:close], text[close + len(THINK_CLOSE):]
        open_ = head.find(THINK_OPEN)
        if open_ >= 0:  # anything before the block is answer text too (rare)
            answer, head = head[:open_] + answer, head[open_ + len(THINK_OPEN):]
        return head, answer
    open_ = text.find(THINK_OPEN)
    if open_ >= 0:  # opened and never closed: cut off while thinking
        return text[open_ + len(THINK_OPEN):], text[:open_]
    return (text, "") if started else ("", text)


def split_thinking(text, started=False):
    """(thinking, answer) of a completion, stripped; `started`: the prompt already opened the block."""
    thinking, answer = _split(text or "", started)
    return thinking.strip(), answer.strip()


def answer_text(text, started=False):
    """The part of a (partial) completion after its thinking block, unstripped: stop criteria look
    at it (its trailing newline is what ends an action line)."""
    return _split(text or "", started)[1]

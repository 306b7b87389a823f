"""The one interface every backend implements: a batch of conversations in, one completion each out."""

from dataclasses import dataclass


def cut_after_action(text):
    """The text up to the end of its first "Action:" line, stripped: every model backend ends a
    turn there (hf as a stop criterion, vllm and openai by cutting the returned text), so text a
    model writes after its action (an imagined observation, a second action) never reaches the
    history or the parser."""
    i = text.lower().find("action:")
    if i < 0:
        return text.strip()
    start = i + len("action:")
    rest = text[start:]
    body = len(rest) - len(rest.lstrip())  # the action may start on the next line, as hf allows
    end = rest.find("\n", body)
    return (text if end < 0 else text[:start + end]).strip()


@dataclass
class Completion:
    """`text` is the answer that enters the conversation history; `thinking` is the model's
    thinking block (Qwen3), logged but never put back into the prompt; `completion_tokens`
    counts both; `cached_tokens` counts the prompt tokens an engine took from its prefix cache."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    thinking: str = ""
    cached_tokens: int = 0
    injected: bool = False  # a mistake put in the teacher's place (duomem.policies.perturbed): no loss on it


class Policy:
    """`act(conversations, infos)` -> list of Completion, one per conversation, in order.

    `conversations` are lists of {"role", "content"} messages ending with a user turn. `infos`
    holds the environment's side information for each episode (the oracle expert reads its plan
    there; model backends ignore it). A backend is free to batch or parallelise the list.
    `sampling`, when given, holds per conversation None (the policy's own settings) or
    {"temperature", "seed"}: that conversation is sampled at that temperature with that seed
    (teacher collection: every attempt and retry draws its own trajectory).
    """

    name = "policy"

    def act(self, conversations, infos=None, sampling=None):
        raise NotImplementedError

    def describe(self):
        """What identifies this policy in provenance records."""
        return {"backend": self.name}

    def close(self):
        pass

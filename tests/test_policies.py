import pytest
import torch

from duomem.policies import make_policy
from duomem.policies.hf import _StopAfterAction
from duomem.prompts import initial_conversation

OBS = ("-= Welcome to TextWorld, ALFRED! =-\n\nYou are in the middle of a room. Looking quickly around you, "
       "you see a cabinet 1, a fridge 1, and a sinkbasin 1.\n\nYour task is to: put a clean apple in fridge.")


def _conversations():
    a = initial_conversation(OBS)
    b = initial_conversation(OBS) + [{"role": "assistant", "content": "Thought: go.\nAction: go to fridge 1"},
                                     {"role": "user", "content": "You arrive at fridge 1. The fridge 1 is closed."}]
    c = initial_conversation("short")
    return [a, b, c]


def test_hf_batched_equals_one_at_a_time(smollm2_dir):
    # The real SmolLM2 (a random model decodes to special tokens only, which would make this vacuous).
    policy = make_policy("hf", path=smollm2_dir, threads=1, batch_size=3, max_new_tokens=10)
    convs = _conversations()
    batched = policy.act(convs)
    single = [policy.act([c])[0] for c in convs]
    assert len(batched) == 3 and all(c.text for c in batched)
    assert [c.text for c in batched] == [c.text for c in single]
    assert batched[1].prompt_tokens > batched[0].prompt_tokens > batched[2].prompt_tokens > 0
    assert all(0 < c.completion_tokens <= 10 for c in batched)


def test_hf_tiny_random_model_runs(tiny_model_dir):
    out = make_policy("hf", path=tiny_model_dir, threads=1, max_new_tokens=5).act(_conversations())
    assert len(out) == 3 and all(isinstance(c.text, str) and c.completion_tokens <= 5 for c in out)


def test_hf_chat_template_and_stop(smollm2_dir):
    policy = make_policy("hf", path=smollm2_dir, threads=1, max_new_tokens=4)
    text = policy.render(initial_conversation(OBS))
    assert text.startswith("<|im_start|>system\n") and text.endswith("<|im_start|>assistant\n")
    stop = _StopAfterAction(policy.tokenizer, 0)
    ids = policy.tokenizer(["Thought: x\nAction: look\n", "Thought: x\nAction: lo", "Thought: no"],
                           return_tensors="pt", padding=True)["input_ids"]
    assert stop(ids, None).tolist() == [True, False, False]


def test_expert_needs_infos_and_follows_the_plan():
    expert = make_policy("expert")
    out = expert.act([[], []], [{"expert_plan": ["go to desk 1"]}, {"expert_plan": []}])
    assert out[0].text.endswith("Action: go to desk 1") and out[1].text.endswith("Action: look")
    with pytest.raises(ValueError):
        expert.act([[]])


def test_unknown_backend_is_named():
    with pytest.raises(ValueError, match="unknown backend 'llama'; allowed: hf, openai, expert, vllm"):
        make_policy("llama")

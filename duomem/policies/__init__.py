"""Backends behind one interface (see base.Policy); `make_policy` builds one from explicit arguments."""

from .base import Completion, Policy

BACKENDS = ("hf", "openai", "expert", "vllm")


def make_policy(backend, **kwargs):
    if backend == "expert":
        from .expert import ExpertPolicy

        return ExpertPolicy()
    if backend == "hf":
        from .hf import HFPolicy

        return HFPolicy(**kwargs)
    if backend == "openai":
        from .openai_backend import OpenAIPolicy

        return OpenAIPolicy(**kwargs)
    if backend == "vllm":
        from .vllm_backend import VLLMPolicy

        return VLLMPolicy(**kwargs)
    raise ValueError(f"unknown backend {backend!r}; allowed: {', '.join(BACKENDS)}")


def template_kwargs(thinking):
    """Chat template arguments for a model's `thinking` setting: a hybrid model (True/False) gets
    enable_thinking; a thinking-only template ("always") and other models get none."""
    return {"enable_thinking": thinking} if isinstance(thinking, bool) else {}


def policy_from_params(p, threads=1, adapter=None, adapter_name=None):
    """Build a policy from a rule's flat parameters (model path, endpoint, generation settings).

    `adapter` is a LoRA folder: hf loads it with peft; vllm serves it through a LoRARequest named
    `adapter_name`; an OpenAI-compatible server must serve it under `adapter_name` (vLLM:
    --lora-modules NAME=FOLDER), which then is the request's model."""
    backend = p["backend"]
    template = template_kwargs(p.get("thinking"))
    if backend == "hf":
        return make_policy("hf", path=p["path"], adapter=adapter, threads=threads, batch_size=p["batch_size"],
                           max_new_tokens=p["max_new_tokens"], temperature=p["temperature"], seed=p["seed"],
                           chat_template_kwargs=template)
    if backend == "vllm":
        from .vllm_backend import engine_settings

        return make_policy("vllm", path=p["path"], adapter=adapter, adapter_name=adapter_name,
                           max_tokens=p["max_new_tokens"], temperature=p["temperature"], seed=p["seed"],
                           chat_template_kwargs=template, merge_lora=bool(p.get("merge_lora")),
                           **engine_settings(p))
    if backend == "openai":
        extra = {"chat_template_kwargs": template} if template else None
        model = adapter_name if adapter else (p.get("served_name") or p["path"])
        return make_policy("openai", base_url=p["base_url"], model=model,
                           api_key_env=p["api_key_env"], concurrency=p["concurrency"],
                           max_tokens=p["max_new_tokens"], temperature=p["temperature"], seed=p["seed"],
                           extra_body=extra, timeout=p.get("timeout") or 120.0,
                           max_retries=p.get("max_retries", 5))
    return make_policy(backend)


__all__ = ["BACKENDS", "Completion", "Policy", "make_policy", "policy_from_params", "template_kwargs"]

"""vLLM offline backend: one `LLM.chat` call per turn for every active conversation.

Written against vLLM's documented offline API (`vllm.LLM`, `LLM.chat`, `SamplingParams`,
`vllm.lora.request.LoRARequest`); vLLM is imported only when a policy is built, so the package and
its tests run where vLLM cannot be installed. Automatic prefix caching is on by default: every
episode shares the system prompt, the reference trajectory and much of the memory block, and each
turn's prompt extends the previous one, so the engine computes those tokens once.

The agent's turn ends after its action line. vLLM has no stop condition of that shape (a stop
string cannot say "the newline after the action"), so the text is cut after the action line by
`cut_after_action`, the same rule as the hf backend's stop criterion; a chat model normally ends its
turn there anyway, and `max_tokens` bounds the rest. Thinking text never enters the history.

No result is ever computed with another row's weights: vLLM 0.32's CPU build gives base-model rows
the adapter in the last slot when one batch mixes base and LoRA requests (FIELD-NOTES), so `act`
sends one `LLM.chat` call per adapter (base included) and puts the rows back in order.
"""

import atexit
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from .base import Completion, Policy, cut_after_action
from .thinking import opens_thinking, split_thinking

# Rule parameter (rules/common.smk POLICY_PARAMS) -> vllm.LLM keyword.
ENGINE_PARAMS = {
    "tensor_parallel_size": "tensor_parallel_size",
    "max_model_len": "max_model_len",
    "gpu_memory_utilization": "gpu_memory_utilization",
    "max_lora_rank": "max_lora_rank",
    "max_loras": "max_loras",
    "enable_prefix_caching": "enable_prefix_caching",
    "vllm_dtype": "dtype",
    "enforce_eager": "enforce_eager",
    "block_size": "block_size",
    "ngram_speculative_tokens": "speculative_config",
}

# Prompt-lookup (n-gram) speculative decoding: drafts are copied from the request's own prompt and
# output where its last 2-4 tokens occurred before, and the model checks them in one pass. Greedy
# output stays the model's own (up to the numerics of a different batch shape); an agent that
# repeats its earlier turns or copies names from the observation decodes several tokens a step.
NGRAM_LOOKUP = {"prompt_lookup_min": 2, "prompt_lookup_max": 4}


def speculative_config(ngram_tokens):
    """vLLM's `speculative_config` for n-gram drafts of `ngram_tokens` tokens a step."""
    return {"method": "ngram", "num_speculative_tokens": int(ngram_tokens), **NGRAM_LOOKUP}


def cpu_environment(kvcache_gib=4):
    """The settings vLLM's CPU build needs and does not guess well (FIELD-NOTES, "vLLM on the CPU"),
    as defaults the caller's environment overrides: a KV cache size (without it start-up fails a
    memory check), OpenMP threads bound to this process's own cores (the default leaves the model
    one thread; a SLURM job's cores need not start at 0), and forked workers (spawned ones would
    re-run a Snakemake script's top level)."""
    cores = sorted(os.sched_getaffinity(0))
    return {"VLLM_CPU_KVCACHE_SPACE": str(kvcache_gib), "VLLM_CPU_OMP_THREADS_BIND": ",".join(map(str, cores)),
            "VLLM_WORKER_MULTIPROC_METHOD": "fork"}


# The offline engine's core runs in this process, not a child: on a 2-core EPYC it started in 5 s
# instead of 21 and decoded ~8 % faster, with no engine process to kill at exit (README, "The vLLM
# backend"). One engine per process at a time. Offline only: `vllm serve` keeps its child.
OFFLINE_CPU_ENVIRONMENT = {"VLLM_ENABLE_V1_MULTIPROCESSING": "0"}


def _on_cpu():
    import torch

    return not torch.cuda.is_available()


def engine_args(path, *, seed=0, enable_lora=False, tensor_parallel_size=1, max_model_len=None,
                gpu_memory_utilization=0.9, max_lora_rank=None, max_loras=None, enable_prefix_caching=True,
                dtype="auto", enforce_eager=False, **extra):
    """Keyword arguments of `vllm.LLM(...)` (each one a `vllm.EngineArgs` field: tests check that
    on the installed vLLM); LoRA sizes only when LoRA is on, unset values left out."""
    args = {"model": str(path), "seed": int(seed), "tensor_parallel_size": int(tensor_parallel_size or 1),
            "gpu_memory_utilization": float(gpu_memory_utilization), "dtype": dtype or "auto",
            "enable_prefix_caching": bool(enable_prefix_caching), "enable_lora": bool(enable_lora),
            "enforce_eager": bool(enforce_eager)}
    if max_model_len:
        args["max_model_len"] = int(max_model_len)
    if enable_lora:
        args.update({k: int(v) for k, v in (("max_lora_rank", max_lora_rank), ("max_loras", max_loras)) if v})
    args.update(extra)
    return args


def engine_settings(params):
    """The engine settings among a rule's flat parameters (names as in POLICY_PARAMS), unset ones left out."""
    settings = {ENGINE_PARAMS[k]: params[k] for k in ENGINE_PARAMS if params.get(k) is not None}
    if "speculative_config" in settings:
        settings["speculative_config"] = speculative_config(settings["speculative_config"])
    return settings


def conversation_seed(seed, conversation):
    """A sampling seed per conversation state: reproducible whatever the batch or a resume does."""
    text = json.dumps([seed, conversation], sort_keys=True, ensure_ascii=False)
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) & 0x7FFFFFFF


def adapter_rank(folder):
    """The LoRA rank `r` of a peft adapter folder (adapter_config.json), or None."""
    config = Path(folder) / "adapter_config.json"
    return json.loads(config.read_text()).get("r") if config.exists() else None


def completion_from_output(output, starts_thinking=False):
    """A `vllm.RequestOutput` as the agent's Completion: thinking apart, the text cut after the action."""
    out = output.outputs[0]
    thinking, answer = split_thinking(out.text, starts_thinking)
    return Completion(cut_after_action(answer), prompt_tokens=len(output.prompt_token_ids or ()),
                      completion_tokens=len(out.token_ids), thinking=thinking,
                      cached_tokens=getattr(output, "num_cached_tokens", None) or 0)


class VLLMPolicy(Policy):
    """`adapters` maps names to peft adapter folders, all served by this one engine; `adapter_name`
    (one of them, or None for the base model) is what `act` uses unless told otherwise.
    `merge_lora`: the one `adapter` is merged into a temporary copy of the base weights, which the
    engine serves without LoRA (vLLM's CPU LoRA kernels are several times slower than the base
    model's; on GPUs the adapter stays a LoRARequest, so one engine can serve many)."""

    name = "vllm"

    def __init__(self, path, adapter=None, adapter_name=None, adapters=None, max_tokens=256, temperature=0.0,
                 seed=0, chat_template_kwargs=None, stop=None, enable_lora=None, merge_lora=False, llm=None,
                 **engine):
        from vllm import SamplingParams
        from vllm.lora.request import LoRARequest

        self._sampling_params, self._lora_request = SamplingParams, LoRARequest
        self.path, self.max_tokens, self.temperature, self.seed = str(path), max_tokens, temperature, seed
        self.chat_template_kwargs = dict(chat_template_kwargs or {})
        self.stop = list(stop or [])
        self._paths, self._requests = {}, {}  # name -> folder; folder -> LoRARequest (stable ids)
        for name, folder in (adapters or {}).items():
            self.add_adapter(name, folder)
        self.default_adapter, self.merged = None, None
        if adapter and merge_lora:
            if adapters:
                raise ValueError("merge_lora serves one adapter merged into the weights; several need LoRARequests")
            self.merged = {"adapter": str(Path(adapter).resolve()), "name": adapter_name or Path(adapter).name,
                           "folder": _merged_copy(path, adapter)}
            path = self.merged["folder"]
        elif adapter:
            self.default_adapter = adapter_name or Path(adapter).name
            self.add_adapter(self.default_adapter, adapter)
        # LoRA costs engine memory and speed: on only when adapters are served (or asked for).
        self.engine_kwargs = engine_args(path, seed=seed, enable_lora=bool(self._paths) if enable_lora is None
                                         else enable_lora, **engine)
        self._check_ranks()
        if llm is None:
            if _on_cpu():
                for key, value in {**cpu_environment(), **OFFLINE_CPU_ENVIRONMENT}.items():
                    os.environ.setdefault(key, value)
            from vllm import LLM

            llm = LLM(**self.engine_kwargs)
        self.llm = llm
        self.starts_thinking = self._template_opens_thinking()

    def add_adapter(self, name, folder):
        """Register an adapter; the same folder always gets the same request (and integer id)."""
        folder = str(Path(folder).resolve())
        if self._paths.get(name, folder) != folder:
            raise ValueError(f"adapter name {name!r} already names {self._paths[name]}, not {folder}")
        self._paths[name] = folder
        if folder not in self._requests:  # vLLM ids start at 1; a name identifies one adapter
            self._requests[folder] = self._lora_request(lora_name=name, lora_int_id=len(self._requests) + 1,
                                                        lora_path=folder)
        if getattr(self, "engine_kwargs", None) is not None:
            self._check_ranks()
        return self._requests[folder]

    def lora_request(self, name):
        """The LoRARequest of a registered adapter name; None (the base model) for None."""
        if name is None:
            return None
        if name not in self._paths:
            raise KeyError(f"adapter {name!r} is not registered with this engine; known: {sorted(self._paths)}")
        return self._requests[self._paths[name]]

    def _check_ranks(self):
        if not self._paths:
            return
        if not self.engine_kwargs.get("enable_lora"):
            raise ValueError("adapters were given but the engine was built with enable_lora=False")
        limit = self.engine_kwargs.get("max_lora_rank")
        for name, folder in self._paths.items():
            r = adapter_rank(folder)
            if limit and r and r > limit:
                raise ValueError(f"adapter {name!r} has rank {r} > vllm max_lora_rank {limit}; raise "
                                 f"vllm.max_lora_rank in the config")

    def _template_opens_thinking(self):
        """Does this model's generation prompt already open a thinking block (Qwen3 Thinking-2507)?"""
        try:
            prompt = self.llm.get_tokenizer().apply_chat_template(
                [{"role": "user", "content": "x"}], tokenize=False, add_generation_prompt=True,
                **self.chat_template_kwargs)
        except Exception:  # noqa: BLE001 - a probe: without it the output's own tags still split it
            return False
        return opens_thinking(prompt if isinstance(prompt, str) else "")

    def sampling_params(self, conversations, sampling=None):
        """Greedy: one SamplingParams for all. Sampling: one per conversation, seeded by its content
        (one seed for all would reuse the same random draws in every request and turn), or by the
        caller's per-conversation `sampling` ({"temperature", "seed"}; None: these defaults)."""
        def params(temperature, seed):
            return self._sampling_params(n=1, temperature=float(temperature) if seed is not None else 0.0,
                                         seed=seed, max_tokens=int(self.max_tokens), stop=self.stop or None)

        sampling = list(sampling or [None] * len(conversations))
        if not any(sampling) and self.temperature <= 0:
            return params(0.0, None)
        return [params(s["temperature"], s["seed"]) if s
                else params(self.temperature, conversation_seed(self.seed, c) if self.temperature > 0 else None)
                for s, c in zip(sampling, conversations)]

    def describe(self):
        merged = self.merged or {}
        engine = dict(self.engine_kwargs)
        if merged:  # the temporary folder's name changes every run; say what it holds
            engine["model"] = f"{self.path} + {merged['adapter']} (merged)"
        return {"backend": self.name, "model": self.path, "adapter": merged.get("name", self.default_adapter),
                "adapters": dict(self._paths), "merged_adapter": merged.get("adapter"), "max_tokens": self.max_tokens,
                "temperature": self.temperature, "engine": engine}

    def act(self, conversations, infos=None, adapters=None, sampling=None):
        """One `LLM.chat` call per adapter among the conversations (see the module's docstring);
        `adapters`: a name (or None, the base model) per conversation."""
        if not conversations:
            return []
        names = list(adapters) if adapters is not None else [self.default_adapter] * len(conversations)
        if len(names) != len(conversations):
            raise ValueError(f"{len(names)} adapter names for {len(conversations)} conversations")
        params = self.sampling_params(conversations, sampling)
        results = [None] * len(conversations)
        for name in dict.fromkeys(names):  # first-seen order
            rows = [i for i, n in enumerate(names) if n == name]
            group = params if not isinstance(params, list) else [params[i] for i in rows]
            outputs = self.llm.chat([conversations[i] for i in rows], group, use_tqdm=False,
                                    lora_request=self.lora_request(name),
                                    chat_template_kwargs=self.chat_template_kwargs or None)
            if len(outputs) != len(rows):
                raise RuntimeError(f"vLLM returned {len(outputs)} outputs for {len(rows)} conversations")
            for i, o in zip(rows, outputs):
                results[i] = completion_from_output(o, self.starts_thinking)
        return results

    def view(self, adapter_name):
        """A policy on this same engine that uses another registered adapter (or None: the base)."""
        self.lora_request(adapter_name)
        return _AdapterView(self, adapter_name)

    def close(self):
        """Stop the engine's worker processes now (a test or benchmark may start another engine)."""
        llm, self.llm = self.llm, None
        core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
        if callable(getattr(core, "shutdown", None)):
            core.shutdown()
        if self.merged:
            shutil.rmtree(self.merged["folder"], ignore_errors=True)


def _merged_copy(path, adapter):
    """A temporary merged model folder, removed when the process ends (or by `close`)."""
    from ..models import merge_adapter

    folder = tempfile.mkdtemp(prefix="duomem-merged-")
    atexit.register(shutil.rmtree, folder, True)
    merge_adapter(path, adapter, folder)
    return folder


class _AdapterView(Policy):
    name = "vllm"

    def __init__(self, parent, adapter_name):
        self.parent, self.adapter_name = parent, adapter_name

    def act(self, conversations, infos=None, sampling=None):
        return self.parent.act(conversations, infos, adapters=[self.adapter_name] * len(conversations),
                               sampling=sampling)

    def describe(self):
        return {**self.parent.describe(), "adapter": self.adapter_name}

"""transformers backend: chat template, batched generation, key/value cache reuse across turns
(kv.py), optional peft adapter. `kv_reuse=False` re-encodes the whole prompt every turn with plain
`generate` (the naive baseline the benchmark compares against)."""

import torch

from .base import Completion, Policy
from .kv import KVEngine, kv_attention
from .thinking import answer_text, opens_thinking, split_thinking


def action_line_ended(text):
    """True once the text holds an "Action:" line that has ended: the agent's turn is complete."""
    i = text.lower().find("action:")
    rest = text[i + len("action:"):].lstrip() if i >= 0 else ""
    return bool(rest) and "\n" in rest


class _StopAfterAction:
    """generate() stopping criterion: per sequence, stop once its action line has ended. An
    "Action:" line inside a thinking block does not count; `started[i]`: row i's prompt opened one."""

    def __init__(self, tokenizer, prompt_len, started=None):
        self.tokenizer, self.prompt_len, self.started = tokenizer, prompt_len, started

    def __call__(self, input_ids, scores, **kwargs):
        texts = self.tokenizer.batch_decode(input_ids[:, self.prompt_len:], skip_special_tokens=True)
        started = self.started or [False] * len(texts)
        return torch.tensor([action_line_ended(answer_text(t, s)) for t, s in zip(texts, started)],
                            dtype=torch.bool, device=input_ids.device)


class HFPolicy(Policy):
    name = "hf"

    def __init__(self, path, adapter=None, threads=1, batch_size=8, max_new_tokens=128,
                 temperature=0.0, seed=0, dtype="auto", device=None, chat_template_kwargs=None,
                 kv_reuse=True, kv_dtype="auto"):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        torch.set_num_threads(max(1, int(threads)))
        self.path, self.adapter = str(path), (str(adapter) if adapter else None)
        self.batch_size, self.max_new_tokens = batch_size, max_new_tokens
        self.temperature, self.seed = temperature, seed
        self.chat_template_kwargs = dict(chat_template_kwargs or {})
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if dtype == "auto":
            dtype = torch.bfloat16 if self.device == "cuda" else torch.float32
        self.tokenizer = AutoTokenizer.from_pretrained(self.path)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        model = AutoModelForCausalLM.from_pretrained(self.path, dtype=dtype).to(self.device)
        if self.adapter:
            from peft import PeftModel

            # merged into the weights: LoRA then costs nothing at inference
            model = PeftModel.from_pretrained(model, self.adapter).merge_and_unload()
        self.model = model.eval()
        # kv_dtype: "auto" keeps the model's dtype; "bfloat16" under a float32 model stores the
        # cache and runs attention in bfloat16 (kv.kv_attention), on every generation path alike.
        self.kv_dtype = None if kv_dtype in (None, "auto") else getattr(torch, kv_dtype)
        if self.kv_dtype is not None and self.kv_dtype != next(self.model.parameters()).dtype:
            self.model.set_attn_implementation(kv_attention(self.kv_dtype))
        self.engine = None
        if kv_reuse:
            eos = self.model.generation_config.eos_token_id
            eos = set(eos if isinstance(eos, (list, tuple)) else [eos]) - {None}
            eos |= {self.tokenizer.eos_token_id} - {None}
            self.engine = KVEngine(self.model, eos, max_new_tokens, temperature, seed, kv_dtype=self.kv_dtype)

    @property
    def stats(self):
        return dict(self.engine.stats) if self.engine else {}

    def describe(self):
        return {"backend": self.name, "model": self.path, "adapter": self.adapter,
                "max_new_tokens": self.max_new_tokens, "temperature": self.temperature,
                "kv_dtype": str(self.kv_dtype or next(self.model.parameters()).dtype).removeprefix("torch.")}

    def render(self, conversation):
        return self.tokenizer.apply_chat_template(
            conversation, tokenize=False, add_generation_prompt=True, **self.chat_template_kwargs)

    @torch.inference_mode()
    def act(self, conversations, infos=None, sampling=None):
        sampling = list(sampling or [None] * len(conversations))
        out = []
        for start in range(0, len(conversations), self.batch_size):
            chunk, rows = conversations[start:start + self.batch_size], sampling[start:start + self.batch_size]
            out.extend(self._generate_kv(chunk, rows) if self.engine else self._generate_plain(chunk, rows))
        if self.engine:
            self.engine.end_turn()
        return out

    def _completion(self, ids, prompt_tokens, started):
        thinking, answer = split_thinking(self.tokenizer.decode(ids, skip_special_tokens=True), started)
        return Completion(answer, prompt_tokens=prompt_tokens, completion_tokens=len(ids), thinking=thinking)

    def _generate_kv(self, conversations, sampling):
        texts = [self.render(c) for c in conversations]
        prompts = [self.tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
        started = [opens_thinking(t) for t in texts]
        out = [None] * len(prompts)
        # The stop test sees token ids only; rows whose prompt opened a thinking block (same for
        # every row of one model and template) run as their own batch.
        for flag in sorted(set(started)):
            rows = [i for i, s in enumerate(started) if s == flag]

            def stop(ids, flag=flag):
                return action_line_ended(answer_text(self.tokenizer.decode(ids, skip_special_tokens=True), flag))

            generated = self.engine.generate([prompts[i] for i in rows], stop, [sampling[i] for i in rows])
            for i, g in zip(rows, generated):
                out[i] = self._completion(g, len(prompts[i]), flag)
        return out

    def _generate_plain(self, conversations, sampling):
        if not any(sampling):
            return self._generate(conversations, self.temperature, self.seed)
        out = []
        for c, s in zip(conversations, sampling):  # a row's own seed: one row per generate call
            out += self._generate([c], *((s["temperature"], s["seed"]) if s else (self.temperature, self.seed)))
        return out

    def _generate(self, conversations, temperature, seed):
        texts = [self.render(c) for c in conversations]
        started = [opens_thinking(t) for t in texts]
        enc = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
        prompt_len = enc["input_ids"].shape[1]
        sample = temperature > 0
        if sample:
            torch.manual_seed(seed)
        gen = self.model.generate(
            **enc, max_new_tokens=self.max_new_tokens, do_sample=sample,
            temperature=temperature if sample else None, top_p=None, top_k=None,
            pad_token_id=self.tokenizer.pad_token_id,
            stopping_criteria=[_StopAfterAction(self.tokenizer, prompt_len, started)],
        )
        new = gen[:, prompt_len:]
        result = []
        for i, row in enumerate(new):
            n_prompt = int(enc["attention_mask"][i].sum())
            keep = row[row != self.tokenizer.pad_token_id] if self.tokenizer.pad_token_id is not None else row
            result.append(self._completion(keep, n_prompt, started[i]))
        return result

"""transformers backend: chat template, plain batched `generate` (the whole prompt every turn),
optional peft adapter merged into the weights. For small runs, tests of training consistency (the
layout the adapter was trained on is the layout it plays in) and the benchmark's naive baseline;
evaluations at scale, on the CPU default too, run on vLLM (policies/vllm_backend.py)."""

import torch

from .base import Completion, Policy
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
                 temperature=0.0, seed=0, dtype="auto", device=None, chat_template_kwargs=None):
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

    def describe(self):
        return {"backend": self.name, "model": self.path, "adapter": self.adapter,
                "max_new_tokens": self.max_new_tokens, "temperature": self.temperature,
                "dtype": str(next(self.model.parameters()).dtype).removeprefix("torch.")}

    def render(self, conversation):
        return self.tokenizer.apply_chat_template(
            conversation, tokenize=False, add_generation_prompt=True, **self.chat_template_kwargs)

    @torch.inference_mode()
    def act(self, conversations, infos=None, sampling=None):
        sampling = list(sampling or [None] * len(conversations))
        out = []
        for start in range(0, len(conversations), self.batch_size):
            chunk, rows = conversations[start:start + self.batch_size], sampling[start:start + self.batch_size]
            out.extend(self._generate_rows(chunk, rows))
        return out

    def _completion(self, ids, prompt_tokens, started):
        thinking, answer = split_thinking(self.tokenizer.decode(ids, skip_special_tokens=True), started)
        return Completion(answer, prompt_tokens=prompt_tokens, completion_tokens=len(ids), thinking=thinking)

    def _generate_rows(self, conversations, sampling):
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

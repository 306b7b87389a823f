"""transformers backend: chat template, left-padded batched generation, optional peft adapter."""

import torch

from .base import Completion, Policy


class _StopAfterAction:
    """Per-sequence stop once the new text holds an "Action:" line that has ended."""

    def __init__(self, tokenizer, prompt_len):
        self.tokenizer, self.prompt_len = tokenizer, prompt_len

    def __call__(self, input_ids, scores, **kwargs):
        texts = self.tokenizer.batch_decode(input_ids[:, self.prompt_len:], skip_special_tokens=True)
        done = []
        for t in texts:
            i = t.lower().find("action:")
            rest = t[i + len("action:"):].lstrip() if i >= 0 else ""
            done.append(bool(rest) and "\n" in rest)
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


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

            model = PeftModel.from_pretrained(model, self.adapter)
        self.model = model.eval()

    def describe(self):
        return {"backend": self.name, "model": self.path, "adapter": self.adapter,
                "max_new_tokens": self.max_new_tokens, "temperature": self.temperature}

    def render(self, conversation):
        return self.tokenizer.apply_chat_template(
            conversation, tokenize=False, add_generation_prompt=True, **self.chat_template_kwargs)

    @torch.inference_mode()
    def act(self, conversations, infos=None):
        out = []
        for start in range(0, len(conversations), self.batch_size):
            out.extend(self._generate(conversations[start:start + self.batch_size]))
        return out

    def _generate(self, conversations):
        texts = [self.render(c) for c in conversations]
        enc = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
        prompt_len = enc["input_ids"].shape[1]
        sample = self.temperature > 0
        if sample:
            torch.manual_seed(self.seed)
        gen = self.model.generate(
            **enc, max_new_tokens=self.max_new_tokens, do_sample=sample,
            temperature=self.temperature if sample else None, top_p=None, top_k=None,
            pad_token_id=self.tokenizer.pad_token_id,
            stopping_criteria=[_StopAfterAction(self.tokenizer, prompt_len)],
        )
        new = gen[:, prompt_len:]
        result = []
        for i, row in enumerate(new):
            n_prompt = int(enc["attention_mask"][i].sum())
            keep = row[row != self.tokenizer.pad_token_id] if self.tokenizer.pad_token_id is not None else row
            result.append(Completion(self.tokenizer.decode(keep, skip_special_tokens=True).strip(),
                                     prompt_tokens=n_prompt, completion_tokens=int(keep.numel())))
        return result

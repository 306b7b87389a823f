"""Any OpenAI-compatible chat endpoint (vLLM's server, a hosted API, `transformers serve`).

The key is read from the environment variable the config names, never from a file. The openai
client retries connection errors, 408/409/429 (honouring Retry-After) and 5xx with exponential
backoff; once its retries are spent the run stops with an error naming the endpoint, and the
episodes in flight are not recorded.
"""

import os
from concurrent.futures import ThreadPoolExecutor

from .base import Completion, Policy


class EndpointError(RuntimeError):
    """The endpoint failed after all retries."""


class OpenAIPolicy(Policy):
    name = "openai"

    def __init__(self, base_url, model, api_key_env="OPENAI_API_KEY", concurrency=8, timeout=120.0,
                 max_retries=5, max_tokens=256, temperature=0.0, seed=0, extra_body=None):
        import openai

        if not base_url:
            raise ValueError("the openai backend needs a base_url")
        key = os.environ.get(api_key_env, "") if api_key_env else ""
        self.base_url, self.model = base_url, model
        self.max_tokens, self.temperature, self.seed = max_tokens, temperature, seed
        self.extra_body = dict(extra_body or {})
        self.client = openai.OpenAI(base_url=base_url, api_key=key or "EMPTY", timeout=timeout,
                                    max_retries=max_retries)
        self.pool = ThreadPoolExecutor(max_workers=max(1, concurrency))
        self._openai = openai

    def describe(self):
        return {"backend": self.name, "base_url": self.base_url, "model": self.model,
                "max_tokens": self.max_tokens, "temperature": self.temperature}

    def _one(self, conversation):
        try:
            r = self.client.chat.completions.create(
                model=self.model, messages=conversation, max_tokens=self.max_tokens,
                temperature=self.temperature, seed=self.seed, extra_body=self.extra_body or None)
        except self._openai.APIError as e:
            raise EndpointError(f"OpenAI-compatible endpoint {self.base_url} (model {self.model!r}) failed "
                                f"after retries: {type(e).__name__}: {e}") from None
        if not r.choices:
            raise EndpointError(f"endpoint {self.base_url} returned no choices for model {self.model!r}")
        usage = r.usage
        return Completion(r.choices[0].message.content or "",
                          prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
                          completion_tokens=getattr(usage, "completion_tokens", 0) or 0)

    def act(self, conversations, infos=None):
        return list(self.pool.map(self._one, conversations))

    def close(self):
        self.pool.shutdown(wait=False, cancel_futures=True)

"""Any OpenAI-compatible chat endpoint (vLLM's server, a hosted API).

The key is read from the environment variable the config names, never from a file or a rule
parameter. Retries are ours, not the client's (its own are switched off), so that every retry is
one line in the job log and the final error says how often and why: connection errors, timeouts,
HTTP 408/409/429 and 5xx are retried with exponential backoff (a Retry-After header sets the wait);
other HTTP errors (a wrong model name, a rejected key) fail at once. Once the retries are spent the
run stops with an `EndpointError` naming the endpoint; the episodes in flight are not recorded.
"""

import os
import random
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from email.utils import parsedate_to_datetime

from .base import Completion, Policy, cut_after_action
from .thinking import split_thinking

RETRY_STATUS = {408, 409, 429}
MAX_RETRY_AFTER = 600.0  # seconds; a longer Retry-After is cut to this


class EndpointError(RuntimeError):
    """The endpoint failed after all retries (or with an error that retrying cannot fix)."""


def _one_line(text, limit=300):
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit] + "..."


def retry_after_seconds(headers):
    """The server's requested wait (Retry-After in seconds or as an HTTP date, or retry-after-ms)."""
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


class OpenAIPolicy(Policy):
    name = "openai"

    def __init__(self, base_url, model, api_key_env="OPENAI_API_KEY", concurrency=8, timeout=120.0,
                 max_retries=5, backoff=1.0, max_backoff=30.0, max_tokens=256, temperature=0.0, seed=0,
                 extra_body=None):
        import openai

        if not base_url:
            raise ValueError("the openai backend needs a base_url")
        key = os.environ.get(api_key_env, "") if api_key_env else ""
        self.base_url, self.model = base_url, model
        self.max_tokens, self.temperature, self.seed = max_tokens, temperature, seed
        self.timeout, self.max_retries = float(timeout), int(max_retries)
        self.backoff, self.max_backoff = float(backoff), float(max_backoff)
        self.extra_body = dict(extra_body or {})
        self.client = openai.OpenAI(base_url=base_url, api_key=key or "EMPTY", timeout=self.timeout,
                                    max_retries=0)
        self.pool = ThreadPoolExecutor(max_workers=max(1, concurrency))
        self._openai = openai
        self._failed = threading.Event()  # one request gave up: the others stop retrying

    def describe(self):
        return {"backend": self.name, "base_url": self.base_url, "model": self.model,
                "max_tokens": self.max_tokens, "temperature": self.temperature}

    def _error(self, what, attempts):
        return EndpointError(f"OpenAI-compatible endpoint {self.base_url} (model {self.model!r}) failed "
                             f"after {attempts} attempt{'s' * (attempts != 1)}: {what}")

    def _classify(self, e):
        """(reason, retryable, Retry-After seconds) of a failed request."""
        o = self._openai
        if isinstance(e, o.APITimeoutError):
            return f"no answer within the {self.timeout:g} s timeout", True, None
        if isinstance(e, o.APIConnectionError):
            cause = e.__cause__ or e.__context__
            return f"cannot connect ({_one_line(cause or e, 160)})", True, None
        if isinstance(e, o.APIStatusError):
            code = e.status_code
            reason = f"HTTP {code}: {_one_line(e.message)}"
            if code == 401:
                reason += " (check the API key in the variable named by api_key_env)"
            return reason, code in RETRY_STATUS or code >= 500, retry_after_seconds(e.response.headers)
        return f"{type(e).__name__}: {_one_line(e)}", False, None

    def _one(self, conversation, sampling=None):
        temperature = sampling["temperature"] if sampling else self.temperature
        seed = sampling["seed"] if sampling else self.seed
        attempt = 0
        while True:
            attempt += 1
            try:
                r = self.client.chat.completions.create(
                    model=self.model, messages=conversation, max_tokens=self.max_tokens,
                    temperature=temperature, seed=seed, extra_body=self.extra_body or None)
                break
            except self._openai.APIError as e:
                reason, retryable, wait = self._classify(e)
                if not retryable or attempt > self.max_retries or self._failed.is_set():
                    self._failed.set()
                    raise self._error(reason, attempt) from None
                if wait is None:
                    wait = min(self.backoff * 2 ** (attempt - 1), self.max_backoff)
                    wait *= 1 - 0.25 * random.random()  # jitter: concurrent requests do not retry in step
                wait = min(wait, MAX_RETRY_AFTER)
                print(f"endpoint {self.base_url}: {reason}; retry {attempt}/{self.max_retries} in {wait:.1f} s",
                      file=sys.stderr, flush=True)
                if self._failed.wait(wait):
                    raise self._error(f"{reason} (another request gave up)", attempt) from None
        if not r.choices:
            raise EndpointError(f"endpoint {self.base_url} returned no choices for model {self.model!r}")
        usage, message = r.usage, r.choices[0].message
        # A server with a reasoning parser (vLLM, Qwen3 thinking) returns the thinking separately:
        # it is logged with the turn, never put back into the conversation. Without a parser it is a
        # <think> block in the content (duomem.policies.thinking).
        reasoning = getattr(message, "reasoning_content", None) or getattr(message, "reasoning", None) or ""
        tagged, answer = split_thinking(message.content or "")
        thinking = "\n".join(t for t in (reasoning.strip(), tagged) if t)
        return Completion(cut_after_action(answer), prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
                          completion_tokens=getattr(usage, "completion_tokens", 0) or 0, thinking=thinking)

    def act(self, conversations, infos=None, sampling=None):
        return list(self.pool.map(self._one, conversations, sampling or [None] * len(conversations)))

    def close(self):
        self._failed.set()  # requests still retrying stop now instead of keeping the process alive
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.client.close()

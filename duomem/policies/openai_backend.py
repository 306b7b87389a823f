"""Any OpenAI-compatible chat endpoint (vLLM's server, a hosted API).

The key is read from the environment variable the config names, never from a file or a rule
parameter. Retries are the client's own (`openai.OpenAI(max_retries=...)`): connection errors,
timeouts, HTTP 408/409/429 and 5xx, with its exponential backoff (0.5 s doubling up to 8 s, with
jitter) or the server's Retry-After (up to 2 minutes; a longer one is not waited for). Two things
the client does not do are added at its one retry hook: each retry is one line in the job log with
its reason, and once one request has failed for good the others stop retrying at once instead of
sleeping out their backoff. Other HTTP errors (a wrong model name, a rejected key) fail at once.
Once the retries are spent the run stops with an `EndpointError` naming the endpoint; the episodes
in flight are not recorded.
"""

import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

from .base import Completion, Policy, cut_after_action
from .thinking import split_thinking


class EndpointError(RuntimeError):
    """The endpoint failed after all retries (or with an error that retrying cannot fix)."""


def _one_line(text, limit=300):
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit] + "..."


def openai_client(openai, on_retry, **kwargs):
    """An `openai.OpenAI` whose retry wait goes through `on_retry(response, error, retry, max_retries,
    wait)`. The client computes the wait (backoff or Retry-After) and decides what is retried; its
    `_sleep_for_retry` is the one place a retry passes through (openai-python >= 1.58; the version
    is pinned in requirements/*.lock and tests/test_endpoint_faults.py fails if the hook moves)."""

    class Client(openai.OpenAI):
        def _sleep_for_retry(self, *, retries_taken, max_retries, options, response):
            wait = self._calculate_retry_timeout(max_retries - retries_taken, options,
                                                 response.headers if response is not None else None)
            # called inside the client's `except` clause: the connection error or timeout, if any
            on_retry(response, sys.exc_info()[1], retries_taken + 1, max_retries, wait)

    if not callable(getattr(openai.OpenAI, "_sleep_for_retry", None)):
        raise RuntimeError(f"openai {openai.__version__} has no _sleep_for_retry hook: install the locked version")
    return Client(**kwargs)


def failure_reason(openai, e, timeout):
    """One line on why a request failed (an openai error, or the httpx error of a retried attempt)."""
    if isinstance(e, openai.APIStatusError):
        reason = f"HTTP {e.status_code}: {_one_line(e.message)}"
        if e.status_code == 401:
            reason += " (check the API key in the variable named by api_key_env)"
        return reason
    if isinstance(e, openai.APITimeoutError) or "Timeout" in type(e).__name__:
        return f"no answer within the {timeout:g} s timeout"
    if isinstance(e, openai.APIConnectionError):
        return f"cannot connect ({_one_line(e.__cause__ or e.__context__ or e, 160)})"
    if type(e).__module__.split(".")[0] in ("httpx", "httpx2", "httpcore"):  # an attempt the client retries
        return f"cannot connect ({_one_line(e, 160)})"
    return f"{type(e).__name__}: {_one_line(e)}"


def retry_reason(openai, response, error, timeout):
    return f"HTTP {response.status_code}" if response is not None else failure_reason(openai, error, timeout)


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
        self.timeout, self.max_retries = float(timeout), int(max_retries)
        self.extra_body = dict(extra_body or {})
        self.client = openai_client(openai, self._on_retry, base_url=base_url, api_key=key or "EMPTY",
                                   timeout=self.timeout, max_retries=self.max_retries)
        self.pool = ThreadPoolExecutor(max_workers=max(1, concurrency))
        self._openai = openai
        self._failed = threading.Event()  # one request gave up: the others stop retrying
        self._tries = threading.local()  # attempts of the request this thread is making

    def describe(self):
        return {"backend": self.name, "base_url": self.base_url, "model": self.model,
                "max_tokens": self.max_tokens, "temperature": self.temperature}

    def _error(self, what, attempts):
        return EndpointError(f"OpenAI-compatible endpoint {self.base_url} (model {self.model!r}) failed "
                             f"after {attempts} attempt{'s' * (attempts != 1)}: {what}")

    def _on_retry(self, response, error, retry, max_retries, wait):
        """The client is about to retry: one log line, then its wait, cut short if another request gave up."""
        reason = retry_reason(self._openai, response, error, self.timeout)
        if self._failed.is_set():
            raise self._error(f"{reason} (another request gave up)", retry)
        self._tries.count = retry + 1
        print(f"endpoint {self.base_url}: {reason}; retry {retry}/{max_retries} in {wait:.1f} s",
              file=sys.stderr, flush=True)
        if self._failed.wait(wait):
            raise self._error(f"{reason} (another request gave up)", retry)

    def _one(self, conversation, sampling=None):
        temperature = sampling["temperature"] if sampling else self.temperature
        seed = sampling["seed"] if sampling else self.seed
        self._tries.count = 1
        try:
            r = self.client.chat.completions.create(
                model=self.model, messages=conversation, max_tokens=self.max_tokens,
                temperature=temperature, seed=seed, extra_body=self.extra_body or None)
        except self._openai.APIError as e:
            self._failed.set()
            raise self._error(failure_reason(self._openai, e, self.timeout), self._tries.count) from None
        except EndpointError:
            self._failed.set()
            raise
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

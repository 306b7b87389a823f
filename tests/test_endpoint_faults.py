"""Endpoint faults against a real loopback HTTP server (issue 6 item 5): connection refused, HTTP 500
(recovery and permanent), 429 with Retry-After, timeouts; bounded retries with backoff, then one clear
`EndpointError` naming the endpoint; an evaluation that fails keeps only the episodes that finished.
The retries and their waits are the openai client's own; the backend adds a log line per retry and
stops the other requests once one has failed for good."""

import time
from email.utils import formatdate

import pytest
from helpers_server import FaultServer, free_port

from duomem.data import build_manifest
from duomem.episode_log import partial_log_path
from duomem.evaluate import evaluate
from duomem.io import read_jsonl, write_jsonl_atomic
from duomem.policies import make_policy
from duomem.policies.openai_backend import EndpointError

CONV = [{"role": "system", "content": "You play a text game."}, {"role": "user", "content": "You see a desk 1."}]
ANSWER = "Thought: I look around.\nAction: look"
BACKOFF = 0.5  # the openai client's first wait (then doubling, at most 8 s, minus up to 25 % jitter)


def policy(base_url, **kw):
    kw = {"timeout": 5.0, "max_retries": 3, "concurrency": 4, "max_tokens": 16, **kw}
    return make_policy("openai", base_url=base_url, model="test-model", api_key_env="DUOMEM_UNSET_KEY", **kw)


def assert_backoff(gaps):
    """Each wait at least the jittered exponential backoff (0.75 * BACKOFF * 2^i), and growing."""
    for i, gap in enumerate(gaps):
        assert gap >= 0.75 * BACKOFF * 2 ** i, gaps
    assert gaps[-1] > gaps[0], gaps


def test_connection_refused_fails_after_bounded_retries(capsys):
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    start = time.monotonic()
    with pytest.raises(EndpointError) as e:
        policy(url, max_retries=2).act([CONV])
    msg = str(e.value)
    assert url in msg and "after 3 attempts" in msg and "cannot connect" in msg and "\n" not in msg
    assert time.monotonic() - start >= 0.75 * BACKOFF * 3  # it waited between attempts
    retries = [line for line in capsys.readouterr().err.splitlines() if line.startswith(f"endpoint {url}")]
    assert len(retries) == 2 and all("cannot connect" in line for line in retries), retries
    assert retries[0].endswith("s") and "retry 1/2 in" in retries[0] and "retry 2/2 in" in retries[1]


def test_http_500_then_recovery():
    with FaultServer(lambda n: ("status", 500) if n < 2 else ("ok", ANSWER)) as server:
        out = policy(server.base_url).act([CONV])
    assert out[0].text == ANSWER and out[0].prompt_tokens == 11 and out[0].completion_tokens == 7
    assert len(server.requests) == 3
    assert_backoff(server.gaps())
    body = server.requests[-1]["body"]
    assert body["model"] == "test-model" and body["messages"] == CONV and body["max_tokens"] == 16


def test_http_500_permanent_is_one_clear_error():
    with FaultServer(lambda n: ("status", 500)) as server:
        with pytest.raises(EndpointError) as e:
            policy(server.base_url, max_retries=3).act([CONV])
    msg = str(e.value)
    assert server.base_url in msg and "'test-model'" in msg and "after 4 attempts" in msg and "HTTP 500" in msg
    assert len(server.requests) == 4  # bounded: 1 + max_retries
    assert_backoff(server.gaps())


def test_429_retry_after_is_honoured():
    with FaultServer(lambda n: ("status", 429, [("Retry-After", "1")]) if n == 0 else ("ok", ANSWER)) as server:
        out = policy(server.base_url).act([CONV])
    assert out[0].text == ANSWER and len(server.requests) == 2
    assert server.gaps()[0] >= 1.0  # the server's wait, not the 0.1 s backoff


def test_retry_after_forms():
    """Milliseconds and an HTTP date are honoured too; a wait over the client's 2-minute limit is not
    waited for: the request fails at once with the server's status."""
    for header in (("retry-after-ms", "1200"), ("Retry-After", formatdate(time.time() + 5, usegmt=True))):
        with FaultServer(lambda n, h=header: ("status", 429, [h]) if n == 0 else ("ok", ANSWER)) as server:
            out = policy(server.base_url).act([CONV])
        assert out[0].text == ANSWER and server.gaps()[0] >= 1.0, header
    with FaultServer(lambda n: ("status", 503, [("Retry-After", "3600")])) as server:
        with pytest.raises(EndpointError, match="after 1 attempt: HTTP 503"):
            policy(server.base_url).act([CONV])
    assert len(server.requests) == 1


def test_embeddings_use_the_clients_retries(capsys):
    from duomem.retrieval import embed_openai

    vectors = {"object": "list", "model": "e", "usage": {"prompt_tokens": 2, "total_tokens": 2},
               "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(([3, 4], [0, 2]))]}
    with FaultServer(lambda n: ("status", 503) if n == 0 else ("json", vectors)) as server:
        out = embed_openai(["a", "b"], base_url=server.base_url, api_key_env="DUOMEM_UNSET_KEY", max_retries=2)
    assert abs(out - [[0.6, 0.8], [0.0, 1.0]]).max() < 1e-6 and len(server.requests) == 2
    assert server.requests[0]["path"].endswith("/embeddings") and server.gaps()[0] >= 0.75 * BACKOFF
    lines = [line for line in capsys.readouterr().err.splitlines() if "embeddings endpoint" in line]
    assert len(lines) == 1 and "HTTP 503; retry 1/2 in" in lines[0]


def test_timeout_retried_then_clear_error():
    # The server would answer after 60 s; the client gives up after 0.5 s per attempt. The bound below
    # separates "honoured the timeout" (about 1.1 s) from "waited for the server" (>= 60 s) with a wide
    # margin for a busy machine; it is not a speed test.
    with FaultServer(lambda n: ("sleep", 60.0, ANSWER)) as server:
        start = time.monotonic()
        with pytest.raises(EndpointError) as e:
            policy(server.base_url, timeout=0.5, max_retries=1).act([CONV])
        elapsed = time.monotonic() - start
    msg = str(e.value)
    assert "no answer within the 0.5 s timeout" in msg and "after 2 attempts" in msg and server.base_url in msg
    assert len(server.requests) == 2 and 1.0 <= elapsed < 30  # two timeouts and a backoff, not 60 s waits


def test_timeout_then_recovery():
    with FaultServer(lambda n: ("sleep", 60.0, ANSWER) if n == 0 else ("ok", ANSWER)) as server:
        out = policy(server.base_url, timeout=0.5).act([CONV])
    assert out[0].text == ANSWER and len(server.requests) == 2


def test_client_errors_are_not_retried():
    with FaultServer(lambda n: ("status", 401)) as server:
        with pytest.raises(EndpointError) as e:
            policy(server.base_url).act([CONV])
    assert "HTTP 401" in str(e.value) and "api_key_env" in str(e.value) and len(server.requests) == 1
    with FaultServer(lambda n: ("status", 404)) as server:
        with pytest.raises(EndpointError, match="after 1 attempt: HTTP 404"):
            policy(server.base_url).act([CONV])


def test_one_failure_stops_the_concurrent_requests():
    """One request fails for good at once (401); the others are told to retry in 60 s. They stop as
    soon as it fails instead of waiting: nothing is retried, and the call ends long before 60 s (the
    bound leaves a wide margin for a busy machine; it is not a speed test)."""
    script = lambda n: ("status", 401) if n == 0 else ("status", 503, [("Retry-After", "60")])  # noqa: E731
    with FaultServer(script) as server:
        start = time.monotonic()
        with pytest.raises(EndpointError):
            policy(server.base_url, max_retries=2, concurrency=4).act([CONV] * 4)
        assert time.monotonic() - start < 30
    assert 1 <= len(server.requests) <= 4  # each conversation asked at most once


def test_evaluation_keeps_only_finished_episodes(tmp_path, data_root):
    """The endpoint answers the first episode's two turns, then fails for good: the run fails naming
    the endpoint, nothing is marked complete, the partial log holds exactly the finished episode; a
    rerun against a working endpoint plays only the other episodes."""
    manifest = tmp_path / "m.jsonl"
    tasks = build_manifest(data_root, "valid_unseen", per_task_type=1, seed=0)[:3]
    write_jsonl_atomic(manifest, tasks)
    out = tmp_path / "eval"
    paths = [out / "episodes.jsonl", out / "summary.csv", out / "provenance.json"]

    def run(base_url):
        return evaluate(manifest, *paths, lambda: policy(base_url, max_retries=1), split="valid_unseen",
                        max_steps=2, seed=0, num_envs=1, progress=False)

    with FaultServer(lambda n: ("ok", ANSWER) if n < 2 else ("status", 500)) as server:
        with pytest.raises(EndpointError, match=f"endpoint {server.base_url} .*HTTP 500"):
            run(server.base_url)
    assert not any(p.exists() for p in paths)
    logged = read_jsonl(partial_log_path(paths[0]))[1:]
    assert [r["task_id"] for r in logged] == [tasks[0]["task_id"]]
    assert logged[0]["steps"] == 2 and logged[0]["actions"] == ["look", "look"]
    assert [t["observation"] for t in logged[0]["turns"]] and logged[0]["prompt_tokens"] == 22

    with FaultServer(lambda n: ("ok", ANSWER)) as server:
        rows = run(server.base_url)
    assert len(server.requests) == 2 * 2  # the two unfinished episodes, two turns each
    records = read_jsonl(paths[0])
    assert [r["task_id"] for r in records] == [t["task_id"] for t in tasks]
    assert records[0] == logged[0] and int(rows[0]["n"]) == 3
    assert not partial_log_path(paths[0]).exists()

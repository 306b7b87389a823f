"""API keys come only from the environment (issue 6 item 6). A real vLLM server started inside the
job by duomem.serving (a model's `serve` command) with VLLM_API_KEY in the job's environment requires
the key, as a deployment would: the key reaches it from the environment, a request without it gets
401, a wrong key fails at once with a message that shows neither key, and the server (its workers
included) is gone when the job's block ends. That a Snakemake run writes the key nowhere (results/,
logs, .snakemake/, rule parameters) is checked on the served-teacher run, test_served_teacher.py."""

import json
import shlex
import urllib.error
import urllib.request
import uuid

import pytest
from helpers_server import START_TIMEOUT, live_processes_in, serve_command, wait_for

from duomem.policies import policy_from_params
from duomem.policies.openai_backend import EndpointError
from duomem.prompts import initial_conversation
from duomem.serving import endpoint


def test_served_model_requires_the_key_and_errors_do_not_show_it(tmp_path, smollm2_dir, monkeypatch):
    key = f"sk-duomem-{uuid.uuid4().hex}"
    job = tmp_path / "job"
    job.mkdir()
    monkeypatch.chdir(job)  # the server inherits the job's working folder: its processes are found by it
    monkeypatch.setenv("VLLM_API_KEY", key)  # the job's environment, which the server inherits
    monkeypatch.setenv("DUOMEM_WRONG_KEY", "sk-wrong-" + key[::-1])
    p = {"backend": "openai", "path": str(smollm2_dir), "base_url": "", "served_name": "",
         "api_key_env": "VLLM_API_KEY", "concurrency": 2, "thinking": None, "temperature": 0.0, "seed": 0,
         "max_new_tokens": 4, "batch_size": 2, "timeout": 120.0, "max_retries": 1,
         "serve": shlex.join(serve_command(smollm2_dir)), "serve_timeout": START_TIMEOUT}
    conv = initial_conversation("You are in a room.\n\nYour task is to: look.")
    with endpoint(p, tmp_path / "logs" / "job.log") as live:
        q = live()
        assert q["base_url"].startswith("http://127.0.0.1:") and live() == q  # started once
        assert live_processes_in(job)
        request = urllib.request.Request(f"{q['base_url']}/chat/completions", method="POST",
                                         data=json.dumps({"model": str(smollm2_dir), "messages": conv}).encode(),
                                         headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(request, timeout=60)
        assert e.value.code == 401  # no key, no answer

        out = policy_from_params(q).act([conv])  # the key from the variable api_key_env names
        assert out[0].prompt_tokens > 0 and out[0].completion_tokens > 0
        with pytest.raises(EndpointError) as e:
            policy_from_params({**q, "api_key_env": "DUOMEM_WRONG_KEY"}).act([conv])
        msg = str(e.value)
        assert "HTTP 401" in msg and "api_key_env" in msg and "after 1 attempt" in msg and "\n" not in msg
        assert key not in msg and key[::-1] not in msg

    # stopped: nothing listens there, no process of it is left (vLLM's engine workers included)
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(q["base_url"] + "/models", timeout=5)
    assert wait_for(lambda: not live_processes_in(job), 60), live_processes_in(job)
    server_log = tmp_path / "logs" / "job.server.log"
    assert server_log.stat().st_size > 0  # the server's output, beside the job's log
    assert key not in server_log.read_text(errors="replace")

"""API keys come only from the environment (issue 6 item 6): a Snakemake evaluation whose model is
served inside the job (`serve:`, a real `transformers serve` that requires the key, as vLLM's
--api-key does) gets the key to the server and writes it nowhere: not in results/, not in the
logs, not in .snakemake/, not in a rule parameter."""

import json
import shlex
import urllib.error
import urllib.request
import uuid

import pytest
import yaml
from conftest import snakemake
from helpers_server import TransformersServer, serve_command, server_env

from duomem.policies import make_policy
from duomem.policies.openai_backend import EndpointError
from duomem.prompts import initial_conversation

KEY_ENV = "DUOMEM_TEST_API_KEY"
TARGET = "results/eval/valid_unseen/served/base/none"


def files_containing(root, needle):
    return [str(p) for p in root.rglob("*") if p.is_file() and needle.encode() in p.read_bytes()]


def test_key_reaches_the_server_and_no_file(tmp_path, tiny_model_dir, data_root):
    key = f"sk-duomem-{uuid.uuid4().hex}"
    record = tmp_path / "requests.jsonl"
    config = {
        "seed": 0, "max_steps": 2,
        "data": {"subset_per_task_type": {"train": 1, "valid_seen": 1, "valid_unseen": 1}},
        "models": {
            "expert": {"backend": "expert"},
            "served": {"backend": "openai", "path": str(tiny_model_dir), "api_key_env": KEY_ENV,
                       # placeholder: the job serves the model itself and talks to that server
                       "base_url": "http://127.0.0.1:9/v1",
                       "serve": shlex.join(serve_command(api_key_env=KEY_ENV, record=record)),
                       "serve_timeout": 300, "timeout": 60, "max_retries": 1, "concurrency": 3},
        },
        "teacher": "expert", "students": ["served"],
        "generation": {"max_new_tokens": 4, "batch_size": 3, "num_envs": 3, "threads": 1},
        "evaluation": {"splits": ["valid_unseen"], "memory": ["none"], "cd": [False], "teacher": False},
    }
    work = tmp_path / "work"
    work.mkdir()
    (work / "config.yaml").write_text(yaml.safe_dump(config))
    env = {**server_env(tmp_path / "hf"), KEY_ENV: key}
    r = snakemake("-c1", f"{TARGET}/summary.csv", "--configfile", str(work / "config.yaml"), workdir=work,
                  env=env, timeout=600)

    episodes = [json.loads(line) for line in (work / TARGET / "episodes.jsonl").read_text().splitlines()]
    assert len(episodes) == 6 and all(e["steps"] == 2 for e in episodes)
    seen = [json.loads(line) for line in record.read_text().splitlines()]
    chats = [s for s in seen if s["path"] == "/v1/chat/completions"]
    assert len(chats) == 6 * 2 and all(s["authorized"] for s in seen)  # the key went with every request
    assert all(s["model"] == str(tiny_model_dir) for s in chats)

    logs = list((work / "results" / "logs").rglob("*.server.log"))
    assert logs and logs[0].stat().st_size > 0  # the server's own output went to its log, which is checked too
    assert files_containing(work / "results", key) == []
    assert files_containing(work / ".snakemake", key) == []
    assert key not in r.stdout + r.stderr
    # the rule's parameters name the variable, never its value
    assert files_containing(work / "results", KEY_ENV)  # (the search does find what is there)
    prov = json.loads((work / TARGET / "provenance.json").read_text())
    assert prov["params"]["api_key_env"] == KEY_ENV and key not in json.dumps(prov)


def test_server_requires_the_key_and_errors_do_not_show_it(tmp_path, tiny_model_dir, monkeypatch):
    key = f"sk-duomem-{uuid.uuid4().hex}"
    monkeypatch.setenv(KEY_ENV, key)
    monkeypatch.setenv("DUOMEM_WRONG_KEY", "sk-wrong-" + key[::-1])
    conv = initial_conversation("You are in a room.\n\nYour task is to: look.")
    with TransformersServer(tmp_path, api_key_env=KEY_ENV) as srv:
        request = urllib.request.Request(f"{srv.base_url}/chat/completions", method="POST",
                                         data=json.dumps({"model": str(tiny_model_dir), "messages": conv}).encode(),
                                         headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(request, timeout=30)
        assert e.value.code == 401  # no key, no answer

        def policy(env_name):
            return make_policy("openai", base_url=srv.base_url, model=str(tiny_model_dir), api_key_env=env_name,
                               max_tokens=4, max_retries=1, backoff=0.05)

        assert policy(KEY_ENV).act([conv])[0].prompt_tokens > 0
        with pytest.raises(EndpointError) as e:
            policy("DUOMEM_WRONG_KEY").act([conv])
        msg = str(e.value)
        assert "HTTP 401" in msg and "api_key_env" in msg and "after 1 attempt" in msg
        assert key not in msg and key[::-1] not in msg

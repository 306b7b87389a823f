"""The openai backend end to end against a real OpenAI-compatible server (`transformers serve`, CPU,
the tiny random model) on loopback: episodes on real ALFWorld games, a server killed mid-run and the
resume after it comes back, the adapter name as the request's model, and duomem.serving (a server
started inside the job and stopped after it, whatever happens)."""

import json
import shlex
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest
from helpers_server import TransformersServer, serve_command, server_env

from duomem.data import build_manifest
from duomem.evaluate import evaluate, partial_log_path
from duomem.io import read_jsonl, write_jsonl_atomic
from duomem.policies import policy_from_params
from duomem.policies.openai_backend import EndpointError
from duomem.prompts import initial_conversation
from duomem.serving import ServeError, endpoint, serve


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_model_dir):
    workdir = tmp_path_factory.mktemp("tserver")
    with TransformersServer(workdir, record=workdir / "requests.jsonl") as s:
        yield s


@pytest.fixture
def manifest(tmp_path, data_root):
    path = tmp_path / "manifest.jsonl"
    write_jsonl_atomic(path, build_manifest(data_root, "valid_unseen", per_task_type=1, seed=0)[:3])
    return path


def params(base_url, model, **kw):
    """The flat rule parameters an `openai` model gets from rules/common.smk."""
    return {"backend": "openai", "path": str(model), "base_url": base_url, "served_name": "",
            "api_key_env": "DUOMEM_UNSET_KEY", "concurrency": 4, "thinking": None, "temperature": 0.0,
            "seed": 0, "max_new_tokens": 8, "batch_size": 4, "timeout": 60.0, "max_retries": 2,
            "serve": "", "serve_timeout": 120, **kw}


def run_eval(manifest, out, make, p, num_envs=3):
    files = [out / "episodes.jsonl", out / "summary.csv", out / "provenance.json"]
    return files, evaluate(manifest, *files, make, split="valid_unseen", max_steps=3, seed=0, num_envs=num_envs,
                           run_params=p, progress=False)


def test_episodes_through_a_real_server(server, tiny_model_dir, manifest, tmp_path):
    from transformers import AutoTokenizer

    p = params(server.base_url, tiny_model_dir)
    (episodes, summary, prov), rows = run_eval(manifest, tmp_path / "eval", lambda: policy_from_params(p), p)
    records = read_jsonl(episodes)
    assert [r["task_id"] for r in records] == [t["task_id"] for t in read_jsonl(manifest)]
    assert summary.exists() and prov.exists() and int(rows[0]["n"]) == 3
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    for r in records:
        assert r["steps"] == 3 and len(r["turns"]) == 3 and not r["won"]
        assert 0 < r["completion_tokens"] <= 3 * 8  # the server's usage, bounded by max_tokens
        # The server's prompt count equals our chat template over exactly the conversation of each
        # turn (first observation, then the history of completions and observations).
        messages, expected = initial_conversation(r["first_observation"]), 0
        for turn in r["turns"]:
            expected += len(tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                                    return_dict=True)["input_ids"])
            messages += [{"role": "assistant", "content": turn["completion"]},
                         {"role": "user", "content": turn["observation"]}]
        assert r["prompt_tokens"] == expected


def test_adapter_name_is_the_requested_model(server, tiny_model_dir):
    """An adapter evaluation asks the endpoint for the adapter's served name (vLLM: --lora-modules
    NAME=FOLDER). Here the server serves NAME from the folder of that name in its working directory:
    a LoRA merged into the tiny model."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    name = "full-r2-lr1e-03"
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    torch.manual_seed(0)
    lora = get_peft_model(model, LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"],
                                            init_lora_weights=False))
    lora.save_pretrained(server.workdir / "adapter")
    lora.merge_and_unload().save_pretrained(server.workdir / name)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(server.workdir / name)

    p = params(server.base_url, tiny_model_dir)
    policy = policy_from_params(p, adapter=str(server.workdir / "adapter"), adapter_name=name)
    assert policy.model == name
    out = policy.act([initial_conversation("You are in a room.\n\nYour task is to: look.")])
    assert out[0].prompt_tokens > 0 and out[0].completion_tokens > 0
    asked = [json.loads(line)["model"] for line in server.record.read_text().splitlines()]
    assert asked[-1] == name  # the request named the adapter ...
    missing = policy_from_params({**p, "max_retries": 0}, adapter="x", adapter_name="no-such-adapter")
    with pytest.raises(EndpointError, match=f"{server.base_url} \\(model 'no-such-adapter'\\)"):
        missing.act([initial_conversation("You are in a room.")])
    # ... and the server answered it from that folder: a name it has no folder for is refused.


def test_server_killed_mid_run_then_resume(tiny_model_dir, manifest, tmp_path):
    out = tmp_path / "eval"
    log = partial_log_path(out / "episodes.jsonl")
    with TransformersServer(tmp_path / "server") as srv:
        p = params(srv.base_url, tiny_model_dir, max_retries=1)

        def kill_after_first_episode():
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                if log.exists() and len(log.read_text().splitlines()) >= 2:  # header + one episode
                    srv.kill()
                    return
                time.sleep(0.05)

        killer = threading.Thread(target=kill_after_first_episode)
        killer.start()
        with pytest.raises(EndpointError) as e:
            run_eval(manifest, out, lambda: policy_from_params(p), p, num_envs=1)
        killer.join()
        msg = str(e.value)
        assert srv.base_url in msg and "cannot connect" in msg and "after 2 attempts" in msg and "\n" not in msg
        assert not any((out / f).exists() for f in ("episodes.jsonl", "summary.csv", "provenance.json"))
        finished = read_jsonl(log)[1:]
        assert 1 <= len(finished) < 3 and all(r["steps"] == 3 for r in finished)

        srv.start()  # the same endpoint comes back
        asked = []

        class Watching:
            """Delegates to the real policy; notes which episodes' conversations reach the endpoint."""

            def __init__(self, inner):
                self.inner = inner

            def act(self, conversations, infos=None):
                asked.extend(c[1]["content"] for c in conversations)
                return self.inner.act(conversations, infos)

            def close(self):
                self.inner.close()

        (episodes, _, _), _ = run_eval(manifest, out, lambda: Watching(policy_from_params(p)), p, num_envs=1)
    records = read_jsonl(episodes)
    assert len(records) == 3 and records[:len(finished)] == finished  # kept as logged, not replayed
    assert set(asked) == {r["first_observation"] for r in records[len(finished):]}


# ---- duomem.serving: the server started inside the job ----


def test_serve_starts_answers_and_stops(tiny_model_dir, tmp_path, monkeypatch):
    p = params("", tiny_model_dir, serve=shlex.join(serve_command()), serve_timeout=120)
    for k, v in server_env(tmp_path / "hf").items():
        if k.startswith(("HF_", "OMP")):
            monkeypatch.setenv(k, v)  # the server inherits the job's environment
    with endpoint(p, tmp_path / "logs" / "job.log") as live:
        q = live()
        assert q["base_url"].startswith("http://127.0.0.1:") and live() == q  # started once
        out = policy_from_params(q).act([initial_conversation("You are in a room.")])
        assert out[0].prompt_tokens > 0
    assert (tmp_path / "logs" / "job.server.log").exists()
    with pytest.raises(urllib.error.URLError):  # stopped: nothing listens there any more
        urllib.request.urlopen(q["base_url"] + "/models", timeout=5)


def test_serve_not_started_when_nothing_is_asked(tmp_path):
    p = {"serve": f"{shlex.quote(sys.executable)} -c 'raise SystemExit(1)' {{port}}", "base_url": ""}
    with endpoint(p, tmp_path / "job.log"):
        pass  # a rerun with every episode done never calls live(): no server, no error
    assert not (tmp_path / "job.server.log").exists()


def test_serve_command_that_exits_is_a_clear_error(tmp_path):
    cmd = f"{shlex.quote(sys.executable)} -c 'import sys; print(\"no GPU here\"); sys.exit(3)' --port {{port}}"
    with pytest.raises(ServeError) as e:
        with serve(cmd, tmp_path / "s.log", timeout=60):
            pass
    assert "exited with code 3" in str(e.value) and "no GPU here" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(ServeError, match="must contain \\{port\\}"):
        with serve("vllm serve some/model --port 8000", tmp_path / "s.log"):
            pass


def test_serve_that_never_answers_is_stopped(tmp_path):
    marker = str(tmp_path / "never-answers")
    cmd = (f"{shlex.quote(sys.executable)} -c 'import time; print(\"loading\", flush=True); time.sleep(60)' "
           f"{{port}} {marker}")
    start = time.monotonic()
    with pytest.raises(ServeError, match="did not answer at .* within 1 s .*loading"):
        with serve(cmd, tmp_path / "s.log", timeout=1):
            pass
    assert time.monotonic() - start < 40  # stopped after its 1 s timeout, not after the command's 60 s
    assert marker not in running_commands()


def running_commands():
    return subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout


SERVE_AND_DIE = """
import os, signal, sys, time
from duomem.serving import serve
with serve(sys.argv[1], sys.argv[2], timeout=30):
    print("up", flush=True)
    os.kill(os.getpid(), getattr(signal, sys.argv[3]))
    time.sleep(30)
"""


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGKILL"])
def test_server_stops_when_the_job_is_killed(tmp_path, sig):
    """Snakemake cancelling the job (SIGTERM) or a kill -9 of the job: the server goes too."""
    # a trivial real HTTP server: /v1/models answers (404 is an answer), so serve() yields
    cmd = f"{shlex.quote(sys.executable)} -m http.server {{port}} --bind 127.0.0.1 --directory {tmp_path}"
    job = subprocess.run([sys.executable, "-c", SERVE_AND_DIE, cmd, str(tmp_path / "s.log"), sig],
                         capture_output=True, text=True, timeout=60)
    assert "up" in job.stdout and job.returncode in (128 + signal.SIGTERM, -signal.SIGKILL)
    deadline = time.monotonic() + 60
    while f"--directory {tmp_path}" in running_commands() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert f"--directory {tmp_path}" not in running_commands()

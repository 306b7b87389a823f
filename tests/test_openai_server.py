"""The openai backend end to end against a real OpenAI-compatible server: vLLM's (the CPU build,
`python -m vllm.entrypoints.openai.api_server`, SmolLM2-135M-Instruct) on loopback, one server for
the module: episodes on real ALFWorld games, the adapter name as the request's model (the server
serves a peft LoRA with --enable-lora --lora-modules NAME=FOLDER), memory extraction, a server
killed mid-run and the resume after it comes back. Then duomem.serving's failure paths (commands
that exit, never answer, or outlive a killed job); a real vLLM server started and stopped by
duomem.serving inside a job is in test_secrets.py (with the API key it requires) and
test_served_teacher.py (through Snakemake)."""

import json
import shlex
import signal
import subprocess
import sys
import threading
import time

import pytest
from helpers_server import VLLMServer

from duomem.data import build_manifest
from duomem.engine import load_adapter
from duomem.episode_log import partial_log_path
from duomem.evaluate import evaluate
from duomem.io import read_jsonl, write_jsonl_atomic
from duomem.memory import extraction_params, make_memory_bank
from duomem.policies import policy_from_params
from duomem.policies.base import cut_after_action
from duomem.policies.openai_backend import EndpointError
from duomem.prompts import initial_conversation
from duomem.serving import ServeError, endpoint, serve

ADAPTER = "full-r8-lr1e-03"  # the served name of the adapter (as rules/eval.smk names a selected one)


@pytest.fixture(scope="module")
def adapter(smollm2_dir, tmp_path_factory):
    """A peft LoRA folder (rank 8 on the attention projections, what duomem.lora trains) whose
    weights are random, not zero: its greedy answers differ from the base model's."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    out = tmp_path_factory.mktemp("adapter") / ADAPTER
    torch.manual_seed(0)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(smollm2_dir),
                           LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                                      init_lora_weights=False))
    model.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def server(smollm2_dir, adapter, tmp_path_factory):
    # no prefix caching: in bf16 a cached prefix can change a greedy answer (FIELD-NOTES), and the
    # adapter test compares two requests with the same prompt
    # runtime LoRA loading on, as a shared engine (duomem.engine) starts it
    with VLLMServer(smollm2_dir, tmp_path_factory.mktemp("vllm"), lora_modules={ADAPTER: adapter},
                    extra=["--no-enable-prefix-caching"], env={"VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True"}) as s:
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
            "seed": 0, "max_new_tokens": 8, "batch_size": 4, "timeout": 120.0, "max_retries": 2,
            "serve": "", "serve_timeout": 120, **kw}


def run_eval(manifest, out, make, p, num_envs=3):
    files = [out / "episodes.jsonl", out / "summary.csv", out / "provenance.json"]
    return files, evaluate(manifest, *files, make, split="valid_unseen", max_steps=3, seed=0, num_envs=num_envs,
                           run_params=p, progress=False)


def test_episodes_through_a_real_server(server, smollm2_dir, manifest, tmp_path):
    from transformers import AutoTokenizer

    p = params(server.base_url, smollm2_dir)
    (episodes, summary, prov), rows = run_eval(manifest, tmp_path / "eval", lambda: policy_from_params(p), p)
    records = read_jsonl(episodes)
    assert [r["task_id"] for r in records] == [t["task_id"] for t in read_jsonl(manifest)]
    assert summary.exists() and prov.exists() and int(rows[0]["n"]) == 3
    tok = AutoTokenizer.from_pretrained(smollm2_dir)
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


def test_adapter_name_is_the_requested_model(server, smollm2_dir, adapter):
    """An adapter evaluation asks the endpoint for the adapter's served name (vLLM: --lora-modules
    NAME=FOLDER), and the server answers with that adapter: a greedy answer that differs from the
    base model's, equal to that of a request that names the adapter itself. (LoRA decoding is slow
    on the CPU: one short answer each.)"""
    import openai

    p = params(server.base_url, smollm2_dir)
    policy = policy_from_params(p, adapter=str(adapter), adapter_name=ADAPTER)
    base = policy_from_params(p)
    assert policy.model == ADAPTER and base.model == str(smollm2_dir)
    conv = initial_conversation("You are in the middle of a room. Looking quickly around you, you see a desk 1, "
                                "a drawer 1, a shelf 1.\n\nYour task is to: examine the book with the desklamp.")
    # one request at a time: a batch that mixes base and adapter rows is never sent (FIELD-NOTES)
    with_adapter, without = policy.act([conv])[0], base.act([conv])[0]
    assert with_adapter.prompt_tokens == without.prompt_tokens > 0
    assert with_adapter.completion_tokens > 0 and without.completion_tokens > 0
    assert with_adapter.text != without.text  # the adapter changes the answer ...

    client = openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0)
    direct = client.chat.completions.create(model=ADAPTER, messages=conv, max_tokens=8, temperature=0.0, seed=0)
    assert direct.model == ADAPTER  # ... the server answers as the adapter ...
    assert cut_after_action(direct.choices[0].message.content) == with_adapter.text
    # ... and the policy's request got exactly that answer. A name the server does not serve:
    missing = policy_from_params({**p, "max_retries": 0}, adapter="x", adapter_name="no-such-adapter")
    with pytest.raises(EndpointError, match=f"{server.base_url} \\(model 'no-such-adapter'\\).*HTTP 404"):
        missing.act([conv])
    for pol in (policy, base, missing):
        pol.close()
    client.close()


def test_memory_extraction_through_a_real_server(server, smollm2_dir, tmp_path):
    """A teacher's memory bank extracted through the endpoint (rule extract_memories with an openai
    model) from two real expert trajectories on train games (duomem's stored reference trajectories).
    The served-teacher run (test_served_teacher.py) cannot get here: SmolLM2 wins no game."""
    from duomem.references import reference_path

    trajectories = []
    for task_type, ref in list(json.loads(reference_path().read_text()).items())[:2]:
        actions = [m["content"].split("Action:")[-1].strip() for m in ref["messages"][1::2]]
        trajectories.append({"trajectory_id": f"{ref['task_id']}#a1", "task_id": ref["task_id"],
                             "task_type": task_type, "task": ref["task"], "actions": actions,
                             "messages": ref["messages"]})
    write_jsonl_atomic(tmp_path / "train.jsonl", trajectories)
    p = extraction_params(params(server.base_url, smollm2_dir), 32, None)
    memories = make_memory_bank(tmp_path / "train.jsonl", tmp_path / "memories.json", "llm",
                                make_policy=lambda: policy_from_params(p), batch_size=2, progress=False, max_empty=1.0)
    assert [m["memory_id"] for m in memories] == [t["trajectory_id"] for t in trajectories]
    assert json.loads((tmp_path / "memories.json").read_text()) == {"method": "llm", "memories": memories}
    assert any(m["script"] for m in memories)  # the served model's answers


def test_server_killed_mid_run_then_resume(server, smollm2_dir, manifest, tmp_path):
    """The module's server is killed (SIGKILL to vLLM and its workers) after the first episode, and
    started again on the same port; the evaluation resumes and plays only the missing episodes."""
    out = tmp_path / "eval"
    log = partial_log_path(out / "episodes.jsonl")
    p = params(server.base_url, smollm2_dir, max_retries=1)

    def kill_after_first_episode():
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            if log.exists() and len(log.read_text().splitlines()) >= 2:  # header + one episode
                server.kill()
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_after_first_episode)
    killer.start()
    try:
        with pytest.raises(EndpointError) as e:
            run_eval(manifest, out, lambda: policy_from_params(p), p, num_envs=1)
    finally:
        killer.join()
    msg = str(e.value)
    assert server.base_url in msg and "cannot connect" in msg and "after 2 attempts" in msg and "\n" not in msg
    assert not any((out / f).exists() for f in ("episodes.jsonl", "summary.csv", "provenance.json"))
    finished = read_jsonl(log)[1:]
    assert 1 <= len(finished) < 3 and all(r["steps"] == 3 for r in finished)

    server.start()  # the same endpoint comes back
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


def test_a_shared_engine_loads_an_adapter_at_run_time(server, smollm2_dir, adapter):
    """duomem.engine.load_adapter: an evaluation loads its adapter into the running server under its
    own name (POST /v1/load_lora_adapter); it answers as the adapter served from the start under
    another name does. Loading a name twice (a second evaluation of the adapter) is fine; a folder
    that is no adapter is a one-line ServeError."""
    load_adapter(server.base_url, "loaded-at-run-time", str(adapter))
    load_adapter(server.base_url, "loaded-at-run-time", str(adapter))
    p = params(server.base_url, smollm2_dir)
    conv = initial_conversation("You are in the middle of a room. Looking quickly around you, you see a desk 1, "
                                "a drawer 1, a shelf 1.\n\nYour task is to: examine the book with the desklamp.")
    loaded = policy_from_params(p, adapter=str(adapter), adapter_name="loaded-at-run-time").act([conv])[0]
    served = policy_from_params(p, adapter=str(adapter), adapter_name=ADAPTER).act([conv])[0]
    assert loaded.text == served.text and loaded.completion_tokens > 0
    with pytest.raises(ServeError, match="refused adapter 'broken'.*HTTP"):
        load_adapter(server.base_url, "broken", str(smollm2_dir))

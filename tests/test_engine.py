"""duomem.engine without a model: the server command a shared engine starts, the wait for its
address, and an adapter load the server refuses. (A real vLLM server loading an adapter at run time:
test_openai_server.py; the engine as a Snakemake service: test_served_teacher.py.)"""

import json
import shlex
import threading
import time

import pytest
from helpers_server import FaultServer

from duomem.engine import client_params, engine_command, load_adapter, wait_for_engine
from duomem.serving import ServeError

VLLM = {"backend": "vllm", "path": "results/models/m", "serve": "", "seed": 3, "tensor_parallel_size": 2,
        "max_model_len": 4096, "gpu_memory_utilization": 0.8, "max_lora_rank": 32, "max_loras": 4,
        "enable_prefix_caching": False, "vllm_dtype": "bfloat16", "enforce_eager": True, "block_size": 32, "adapters": True,
        "api_key_env": "OPENAI_API_KEY"}


def test_the_server_command_carries_the_models_vllm_settings():
    command, env = engine_command(VLLM, python="/venv/bin/python")
    argv = shlex.split(command)
    assert argv[:3] == ["/venv/bin/python", "-m", "vllm.entrypoints.openai.api_server"]
    options = dict(zip(argv[3::2], argv[4::2]))
    assert options["--model"] == "results/models/m" and options["--port"] == "{port}"
    assert options["--host"] == "127.0.0.1" and options["--seed"] == "3"
    assert options["--tensor-parallel-size"] == "2" and options["--max-model-len"] == "4096"
    assert options["--dtype"] == "bfloat16" and options["--gpu-memory-utilization"] == "0.8"
    assert options["--block-size"] == "32"
    assert {"--enforce-eager", "--no-enable-prefix-caching", "--enable-lora"} <= set(argv)
    assert argv[argv.index("--max-lora-rank") + 1] == "32" and argv[argv.index("--max-loras") + 1] == "4"
    # adapters are loaded by the evaluations; vLLM's own key variable is not this model's
    assert env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "True" and env["VLLM_API_KEY"] is None
    base_only, env = engine_command({**VLLM, "adapters": False, "enable_prefix_caching": True, "block_size": None})
    assert "--enable-lora" not in base_only and "--enable-prefix-caching" in base_only
    assert "--block-size" not in base_only  # unset: vLLM's own default
    assert "VLLM_ALLOW_RUNTIME_LORA_UPDATING" not in env
    assert "--speculative-config" not in base_only  # unset: no drafts
    drafted = shlex.split(engine_command({**VLLM, "ngram_speculative_tokens": 5})[0])
    assert json.loads(drafted[drafted.index("--speculative-config") + 1]) == {
        "method": "ngram", "num_speculative_tokens": 5, "prompt_lookup_min": 2, "prompt_lookup_max": 4}


def test_a_serve_command_is_used_as_it_is():
    serve = "vllm serve Qwen/Qwen2.5-72B-Instruct --tensor-parallel-size 4 --port {port}"
    assert engine_command({**VLLM, "backend": "openai", "serve": serve}) == (serve, {})
    with pytest.raises(ValueError, match="backend 'hf'"):
        engine_command({**VLLM, "backend": "hf"})


def test_an_evaluation_waits_for_the_address_then_plays_through_the_openai_backend(tmp_path):
    url_file = tmp_path / "engine.url"
    url_file.touch()  # the service creates it at once, empty, and writes the URL once the server answers
    with FaultServer(lambda n: ("ok", "")) as server:
        threading.Timer(1.0, lambda: url_file.write_text(server.base_url + "\n")).start()
        t0 = time.monotonic()
        p = client_params(url_file, {**VLLM, "serve_timeout": 30, "concurrency": 2, "num_envs": 6})
        assert time.monotonic() - t0 >= 1.0
    assert p["backend"] == "openai" and p["base_url"] == server.base_url
    assert p["served_name"] == "results/models/m" and p["concurrency"] == 6  # one request per environment
    with pytest.raises(ServeError, match="did not answer within 1 s"):
        wait_for_engine(tmp_path / "never.url", timeout=1, poll=0.2)


def test_a_refused_adapter_is_one_line(tmp_path):
    with FaultServer(lambda n: ("status", 404)) as server, pytest.raises(ServeError, match="refused adapter 'a'.*HTTP 404"):
        load_adapter(server.base_url, "a", tmp_path)

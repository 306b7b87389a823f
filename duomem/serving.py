"""Serving a model inside the job: an OpenAI-compatible server started as a subprocess, stopped after.

A model config with `serve: "vllm serve Qwen/Qwen2.5-72B-Instruct --tensor-parallel-size 4 --port {port}"`
is served by the job that needs it (on the GPUs Snakemake/SLURM gave that job): the command starts on a
free loopback port, the job waits until `GET /v1/models` answers, talks to it through the `openai`
backend, and stops it afterwards — SIGTERM to the server's process group (vLLM's workers included),
SIGKILL after a grace period — on success, on error, and on SIGTERM (Snakemake cancelling the job).
If the job itself is killed with SIGKILL, the server gets SIGTERM from the kernel (parent-death signal).
The server's output goes to its own log file beside the job's log.
"""

import contextlib
import ctypes
import os
import shlex
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from .policies.openai_backend import EndpointError

# Rule parameters that say how to reach or run the endpoint, not what it computes: they stay out of
# the resume fingerprint, so raising a timeout after an outage keeps the finished episodes. So does
# params_signature (rules/common.smk): it repeats the other parameters, these included.
OPERATIONAL_KEYS = ("timeout", "max_retries", "serve", "serve_timeout", "params_signature")


class ServeError(EndpointError):
    """The served model did not come up (the command failed, exited, or never answered)."""


def result_params(params):
    """`params` without the keys that cannot change results (see OPERATIONAL_KEYS)."""
    return {k: v for k, v in params.items() if k not in OPERATIONAL_KEYS}


def free_port(host="127.0.0.1"):
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _log_tail(path, lines=5):
    """The log's last non-empty lines on one line (the job's error stays one line)."""
    try:
        text = [line.strip()[:300] for line in Path(path).read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "(no server log)"
    return " | ".join(text[-lines:]) or "(server log is empty)"


def _parent_death_signal():
    """preexec_fn that asks Linux to SIGTERM the server when the job's process dies (even by SIGKILL)."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return lambda: prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _answers(url, api_key, timeout=5.0):
    """True once the server answers HTTP below 500 (a 401 means up, with a wrong key: the first
    request then fails with a clear message instead of waiting out serve_timeout)."""
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {api_key}"} if api_key else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            return r.status < 500
    except urllib.error.HTTPError as e:
        return e.code < 500
    except (urllib.error.URLError, OSError):
        return False


class Server:
    """A running server process (its own process group); `stop()` is idempotent."""

    def __init__(self, command, log_path, host="127.0.0.1", port=None, env=None):
        if "{port}" not in command:
            raise ServeError(f"the serve command must contain {{port}} (the job picks a free port): {command!r}")
        self.host, self.port = host, port or free_port(host)
        self.command = command
        # replace, not format: a command may hold JSON braces (--chat-template-kwargs '{...}')
        self.line = command.replace("{port}", str(self.port))
        self.argv = shlex.split(self.line)
        self.log_path = Path(log_path)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.base_url = f"http://{host}:{self.port}/v1"
        with open(self.log_path, "ab") as log:
            log.write(f"$ {self.line}\n".encode())
            log.flush()
            try:
                self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT,
                                             stdin=subprocess.DEVNULL, start_new_session=True, env=env,
                                             preexec_fn=_parent_death_signal())
            except OSError as e:
                raise ServeError(f"cannot start the serve command {command!r}: {e}") from None

    def wait_ready(self, timeout, api_key="", poll=1.0):
        """Block until GET /v1/models answers; ServeError (with the log's tail) if it exits or times out."""
        deadline = time.monotonic() + timeout
        url = f"{self.base_url}/models"
        while True:
            code = self.proc.poll()
            if code is not None:
                raise ServeError(f"the serve command {self.command!r} exited with code {code} before {url} "
                                 f"answered; last lines of {self.log_path}: {_log_tail(self.log_path)}")
            if _answers(url, api_key):
                return self
            if time.monotonic() > deadline:
                self.stop()
                raise ServeError(f"the serve command {self.command!r} did not answer at {url} within "
                                 f"{timeout:g} s (raise serve_timeout); last lines of {self.log_path}: "
                                 f"{_log_tail(self.log_path)}")
            time.sleep(poll)

    def stop(self, grace=30.0):
        """SIGTERM the whole process group, SIGKILL it if it is still there after `grace` seconds."""
        if self.proc.poll() is None:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, sig)
                try:
                    self.proc.wait(timeout=grace)
                    break
                except subprocess.TimeoutExpired:
                    continue
        # workers the server left behind in its group (the leader may exit first)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


@contextlib.contextmanager
def _stop_on_sigterm():
    """Turn SIGTERM (Snakemake cancelling the job) into SystemExit, so the server is stopped on the way out."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise SystemExit(128 + signum)

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


@contextlib.contextmanager
def serve(command, log_path, timeout=1800.0, api_key="", host="127.0.0.1", grace=30.0, env=None):
    """Start `command` (with {port} filled in), wait until it answers, yield its base URL, stop it."""
    with _stop_on_sigterm():
        server = Server(command, log_path, host=host, env=env)
        try:
            server.wait_ready(timeout, api_key=api_key)
            yield server.base_url
        finally:
            server.stop(grace)


@contextlib.contextmanager
def endpoint(params, log_path=None):
    """Yield `live()`, which returns the policy params to use.

    Without `serve` in `params` it returns them unchanged. With `serve`, the first call starts the
    server (a rerun with nothing left to play never starts it) and returns the params with
    `base_url` pointing at it; the server is stopped when the block ends, however it ends.
    """
    command = params.get("serve") or ""
    if not command:
        yield lambda: params
        return
    log = Path(log_path).with_suffix(".server.log") if log_path else Path("serve.log")
    key = os.environ.get(params.get("api_key_env") or "", "")
    with contextlib.ExitStack() as stack:
        served = {}

        def live():
            if "base_url" not in served:
                served["base_url"] = stack.enter_context(
                    serve(command, log, timeout=float(params.get("serve_timeout") or 1800), api_key=key))
            return {**params, "base_url": served["base_url"]}

        yield live

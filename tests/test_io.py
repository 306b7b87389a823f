import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from duomem.episode_log import EpisodeLog
from duomem.io import atomic_path, write_json_atomic


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.json"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash")
    assert not target.exists() and list(tmp_path.iterdir()) == []
    write_json_atomic(target, {"a": 1})
    assert json.loads(target.read_text()) == {"a": 1}


def test_log_resumes_and_drops_a_torn_line(tmp_path):
    path = tmp_path / "log.jsonl"
    with EpisodeLog(path, "fp") as log:
        log.append({"task_id": "a"})
        log.append({"task_id": "b"})
    with open(path, "a") as f:
        f.write('{"task_id": "c", "won"')  # killed in the middle of a write
    with EpisodeLog(path, "fp") as log:
        assert log.done_ids() == {"a", "b"}
        log.append({"task_id": "c"})
    assert [json.loads(x)["task_id"] for x in path.read_text().splitlines()[1:]] == ["a", "b", "c"]


def test_changed_fingerprint_starts_over(tmp_path):
    path = tmp_path / "log.jsonl"
    with EpisodeLog(path, "fp1") as log:
        log.append({"task_id": "a"})
    with EpisodeLog(path, "fp2") as log:
        assert log.records == []


def test_records_survive_kill_minus_nine(tmp_path):
    path = tmp_path / "log.jsonl"
    code = textwrap.dedent(f"""
        import time
        from duomem.episode_log import EpisodeLog
        log = EpisodeLog({str(path)!r}, "fp")
        for i in range(10_000):
            log.append({{"task_id": str(i), "payload": "x" * 500}})
            time.sleep(0.001)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.time() + 30
    while time.time() < deadline and (not path.exists() or path.stat().st_size < 20_000):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    log = EpisodeLog(path, "fp")
    n = len(log.records)
    assert n >= 30
    assert log.done_ids() == {str(i) for i in range(n)}  # a prefix, in order, none lost
    log.close()

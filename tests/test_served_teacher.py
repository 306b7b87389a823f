"""The served-teacher path through Snakemake (config/cpu-served.yaml): the teacher is SmolLM2 behind
vLLM's OpenAI-compatible server, which each job that uses it starts from its `serve` command and
stops when it ends. Teacher collection on the train games and the teacher's evaluation run through
that server; memory extraction from the collected trajectories follows. The server requires
VLLM_API_KEY (set here to a fake key), which the jobs send and no file, log or output contains."""

import json
import os
import sys
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import REPO, snakemake
from helpers_server import live_processes_in, wait_for

pytestmark = pytest.mark.slow

CONFIG = REPO / "config" / "cpu-served.yaml"
TEACHER = "smollm2-served"
TRAJECTORIES = f"results/trajectories/{TEACHER}/train.jsonl"
EVAL = f"results/eval/valid_unseen/{TEACHER}/base/none"
BANK = f"results/memory/{TEACHER}/memories.json"


def files_containing(root, needle):
    return [str(p) for p in Path(root).rglob("*") if p.is_file() and needle.encode() in p.read_bytes()]


@pytest.fixture(scope="module")
def served_run(tmp_path_factory, data_root):
    work = tmp_path_factory.mktemp("served")
    key = f"sk-duomem-{uuid.uuid4().hex}"
    # the config's serve command runs `python`: this environment's (the activated .venv)
    env = {**os.environ, "VLLM_API_KEY": key, "HF_HUB_OFFLINE": "1",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    # collection and the teacher's evaluation (side by side: one server each)
    run = snakemake("-c2", TRAJECTORIES, f"{EVAL}/summary.csv", "--configfile", str(CONFIG), workdir=work,
                    env=env, timeout=1800)
    extract = snakemake("-c1", BANK, "--configfile", str(CONFIG), workdir=work, env=env, check=False, timeout=1800)
    return SimpleNamespace(work=work, key=key, outputs=[run, extract])


def test_collection_and_evaluation_through_the_served_teacher(served_run):
    work = served_run.work
    stats = json.loads((work / f"results/trajectories/{TEACHER}/stats.json").read_text())
    assert stats["stats"]["instances"] == stats["stats"]["episodes_run"] == 6  # 1 game per type, 1 try each
    assert len((work / TRAJECTORIES).read_text().splitlines()) == stats["stats"]["distinct_trajectories"]

    episodes = [json.loads(line) for line in (work / EVAL / "episodes.jsonl").read_text().splitlines()]
    assert len(episodes) == 6 and all(e["steps"] == 3 or e["won"] for e in episodes)
    # every turn was answered by the server (its usage counts come back with each answer)
    assert all(e["prompt_tokens"] > 0 and 0 < e["completion_tokens"] <= 16 * e["steps"] for e in episodes)
    prov = json.loads((work / EVAL / "provenance.json").read_text())
    assert prov["params"]["backend"] == "openai" and prov["params"]["path"] == "results/models/smollm2-135m-instruct"

    # each job started its own server, whose output went to a log beside the job's ...
    for log in (f"results/logs/trajectories/{TEACHER}.server.log", f"results/logs/{EVAL[len('results/'):]}.server.log"):
        assert (work / log).stat().st_size > 0, log
    # ... and stopped it: no process is left in the working folder (vLLM's engine workers included)
    assert wait_for(lambda: not live_processes_in(work), 60), live_processes_in(work)


def test_extraction_from_the_collected_trajectories(served_run):
    """The teacher's memory bank from its trajectories. SmolLM2-135M wins no game (collection keeps
    wins only): then extraction stops at once with one clear line and starts no server."""
    work = served_run.work
    trajectories = (work / TRAJECTORIES).read_text().splitlines()
    extract = served_run.outputs[1]
    server_log = work / f"results/logs/memory/{TEACHER}.server.log"
    if trajectories:  # the teacher won something: its scripts come from the served model
        assert extract.returncode == 0, extract.stderr[-3000:]
        memories = json.loads((work / BANK).read_text())
        assert memories["method"] == "llm" and len(memories["memories"]) == len(trajectories)
        assert server_log.stat().st_size > 0
    else:
        assert extract.returncode != 0 and not (work / BANK).exists()
        log = (work / f"results/logs/memory/{TEACHER}.log").read_text()
        assert f"{TRAJECTORIES} holds no successful trajectory" in log and "the teacher solved nothing" in log
        assert not server_log.exists()  # nothing to extract: the model was never served
    assert wait_for(lambda: not live_processes_in(work), 60), live_processes_in(work)


def test_key_reaches_the_server_and_no_file(served_run):
    """The jobs ran against a server that requires the key (a request without it gets 401: see
    test_secrets.py), so every request carried it; it is written nowhere."""
    work, key = served_run.work, served_run.key
    assert (work / EVAL / "summary.csv").exists()
    assert files_containing(work / "results", key) == []
    assert files_containing(work / ".snakemake", key) == []
    assert all(key not in r.stdout + r.stderr for r in served_run.outputs)
    # the rule's parameters name the variable, never its value
    assert files_containing(work / "results", "VLLM_API_KEY")  # (the search does find what is there)
    prov = json.loads((work / EVAL / "provenance.json").read_text())
    assert prov["params"]["api_key_env"] == "VLLM_API_KEY" and key not in json.dumps(prov)

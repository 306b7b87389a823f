"""The served-teacher path through Snakemake (config/cpu-served.yaml): the teacher is SmolLM2 behind
vLLM's OpenAI-compatible server, which each job that uses it starts from its `serve` command and
stops when it ends. The whole config runs: the expert plays the train games (SmolLM2 wins none), the
served model writes the memory bank from those wins, the student is evaluated with it (MemP+CD), the
served teacher has its row in table 1. The served model's own collection runs beside it. The server
requires VLLM_API_KEY (set here to a fake key), which the jobs send and no file, log or output contains."""

import json
import os
import sys
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import REPO, job_counts, snakemake
from helpers_server import live_processes_in, wait_for

pytestmark = pytest.mark.slow

CONFIG = REPO / "config" / "cpu-served.yaml"
TEACHER = "smollm2-served"
STUDENT = "smollm2-135m-instruct"
SERVED_TRAJECTORIES = f"results/trajectories/{TEACHER}/train.jsonl"
EXPERT_TRAJECTORIES = "results/trajectories/expert/train.jsonl"
EVAL = f"results/eval/valid_unseen/{TEACHER}/base/none"
STUDENT_EVAL = f"results/eval/valid_unseen/{STUDENT}/base/memp-cd-k2"
BANK = f"results/memory/{TEACHER}/memories.json"


def files_containing(root, needle):
    return [str(p) for p in Path(root).rglob("*") if p.is_file() and needle.encode() in p.read_bytes()]


def read_jsonl(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


@pytest.fixture(scope="module")
def served_run(tmp_path_factory, data_root):
    work = tmp_path_factory.mktemp("served")
    key = f"sk-duomem-{uuid.uuid4().hex}"
    # the config's serve command runs `python`: this environment's (the activated .venv)
    env = {**os.environ, "VLLM_API_KEY": key, "HF_HUB_OFFLINE": "1",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    # the config's `rule all` (jobs side by side: one server each) ...
    run = snakemake("-c2", "--configfile", str(CONFIG), workdir=work, env=env, timeout=1800)
    # ... and the served model's own collection, at the evaluations' 3 steps (the config gives the
    # expert's collection 30; a second config file overrides one key and keeps the rest)
    overlay = work / "served-collection.yaml"
    overlay.write_text("teacher_collection:\n  max_steps: 3\n")
    collect = snakemake("-c2", "--configfile", str(CONFIG), str(overlay), "--", SERVED_TRAJECTORIES, workdir=work,
                        env=env, timeout=1800)
    return SimpleNamespace(work=work, key=key, outputs=[run, collect])


def test_collection_through_the_served_teacher(served_run):
    work = served_run.work
    stats = json.loads((work / f"results/trajectories/{TEACHER}/stats.json").read_text())
    assert stats["stats"]["instances"] == stats["stats"]["episodes_run"] == 6  # 1 game per type, 1 try each
    assert stats["params"]["max_steps"] == 3
    assert len((work / SERVED_TRAJECTORIES).read_text().splitlines()) == stats["stats"]["distinct_trajectories"]
    assert (work / f"results/logs/trajectories/{TEACHER}.server.log").stat().st_size > 0
    # the memory bank comes from the collector's wins, not from the served model's (empty) collection
    assert (work / EXPERT_TRAJECTORIES).read_text().strip()


def test_extraction_by_the_served_teacher_and_evaluation_with_its_bank(served_run):
    work = served_run.work
    wins = read_jsonl(work / EXPERT_TRAJECTORIES)
    memories = json.loads((work / BANK).read_text())
    # one script per expert win, each written by the served model (its log holds the requests)
    assert memories["method"] == "llm" and len(memories["memories"]) == len(wins) >= 1
    assert (work / f"results/logs/memory/{TEACHER}.server.log").stat().st_size > 0
    # the student was evaluated with that bank (its job's sidecar lists the bank among its inputs)
    assert len(read_jsonl(work / STUDENT_EVAL / "episodes.jsonl")) == 6
    assert BANK in (work / STUDENT_EVAL / "episodes.jsonl.provenance.json").read_text()
    # the served teacher's evaluation: every turn answered by the server (usage counts come back)
    episodes = read_jsonl(work / EVAL / "episodes.jsonl")
    assert len(episodes) == 6 and all(e["steps"] == 3 or e["won"] for e in episodes)
    assert all(e["prompt_tokens"] > 0 and 0 < e["completion_tokens"] <= 16 * e["steps"] for e in episodes)
    prov = json.loads((work / EVAL / "provenance.json").read_text())
    assert prov["params"]["backend"] == "openai" and prov["params"]["path"] == "results/models/smollm2-135m-instruct"
    # evaluation.share_engine: the teacher's evaluations ran on the engine service, its serve command
    # started once; the student (vllm, no GPU) kept the offline engine in its jobs
    log = (work / f"results/logs/engines/valid_unseen/{TEACHER}.server.log").read_text()
    assert sum(line.startswith("$ ") for line in log.splitlines()) == 1, log[:2000]
    teacher = json.loads((work / EVAL / "episodes.jsonl.provenance.json").read_text())
    assert teacher["model"]["engine"] == f"results/engines/valid_unseen/{TEACHER}.url", teacher["model"]
    student = json.loads((work / STUDENT_EVAL / "episodes.jsonl.provenance.json").read_text())
    assert student["model"]["engine"] == "own"
    # table 1 has the served teacher's row beside the student's
    table1 = (work / "results/table1.csv").read_text()
    assert TEACHER in table1 and STUDENT in table1
    # every job stopped its server: no process is left in the working folder (engine workers included)
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


def test_a_finished_shared_engine_is_not_planned_again(served_run):
    """Snakemake deletes a service's file when it ends; its evaluations read it as ancient input and
    the Snakefile touches it, so a finished run plans nothing, and an evaluation that must run again
    brings its engine with it. (That the other evaluations of an engine stay done: test_paper_dag.py.)"""
    work = served_run.work
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    assert job_counts(snakemake("-n", "-c2", "--configfile", str(CONFIG), workdir=work, env=env).stdout) == {}
    (work / EVAL / "summary.csv").unlink()
    counts = job_counts(snakemake("-n", "-c2", "--configfile", str(CONFIG), workdir=work, env=env).stdout)
    assert counts["evaluate"] == 1 and counts["engine"] == 1, counts

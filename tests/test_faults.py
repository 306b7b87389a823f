"""Faults: garbage from the model on real games, and kill -9 of every long job kind through Snakemake.

The kill tests reuse the shared smoke run as the uninterrupted reference: each moves one job's outputs
aside, has Snakemake rebuild them, kills the whole process tree with SIGKILL midway, reruns, compares
the result with the reference (timing fields apart), and finally puts the reference back unchanged.
"""

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import REPO, SNAKEMAKE, job_counts, snakemake
from duomem.agent import run_episodes
from duomem.env import NOTHING_HAPPENS, EnvPool
from duomem.episode_log import EpisodeLog
from duomem.io import read_jsonl
from duomem.policies import Completion, Policy

CONFIG = str(REPO / "config" / "smoke.yaml")

# ---- bad model output: every kind is one counted invalid step, and the episode goes on ----

BAD_OUTPUTS = [  # (completion, the parser's verdict, the action that reaches the environment)
    ("", "empty", ""),
    ("   \n\t  \n ", "empty", ""),
    ("x" * 10_000, "no_action", ""),
    ("Thought: go\nAction: " + "go to " * 1_700, "overlong", ""),  # 10,000+ characters
    (bytes(range(256)).decode("latin-1") * 40, "no_action", ""),  # binary garbage
    ("Thought: so many\n" + "".join(f"Action: fly to moon {i}\n" for i in range(300)), "multiple_actions", ""),
    ("Thought: 我需要找到苹果。\nAction: 去 台面 1", None, "去 台面 1"),
    ("Pensée : il faut chercher.\nAction : aller à la table 1", None, "aller à la table 1"),
]


class Replay(Policy):
    """Plays BAD_OUTPUTS in order, one per turn, then `look` (a real command) on the last turn."""

    name = "replay"

    def act(self, conversations, infos=None):
        out = []
        for conv in conversations:
            turn = sum(m["role"] == "assistant" for m in conv)
            text = BAD_OUTPUTS[turn][0] if turn < len(BAD_OUTPUTS) else "Thought: where am I?\nAction: look"
            out.append(Completion(text=text, prompt_tokens=1, completion_tokens=1))
        return out


def test_bad_model_output_is_a_counted_invalid_step(tmp_path, valid_unseen, data_root):
    tasks = [next(t for t in valid_unseen if t["task_type"] == k)
             for k in ("pick_and_place_simple", "pick_clean_then_place_in_recep")]
    steps = len(BAD_OUTPUTS) + 1
    log = tmp_path / "episodes.jsonl"
    with EnvPool(2, max_steps=steps) as pool, EpisodeLog(log, "fp") as episodes:
        records = run_episodes(tasks, Replay(), pool, data_root, steps, on_finish=episodes.append)
    assert read_jsonl(log)[1:] == records  # garbage and all, every record survives the JSON log
    assert sorted(r["task_id"] for r in records) == sorted(t["task_id"] for t in tasks)
    for r in records:
        assert r["steps"] == steps and not r["won"]  # played on to the step limit
        assert r["invalid_steps"] == len(BAD_OUTPUTS)
        for turn, (text, problem, action) in zip(r["turns"], BAD_OUTPUTS):
            assert turn["completion"] == text and turn["problem"] == problem and turn["action"] == action
            assert not turn["admissible"] and turn["observation"] == NOTHING_HAPPENS
        last = r["turns"][-1]  # the game is still alive after all of it
        assert last["action"] == "look" and last["admissible"] and last["observation"] != NOTHING_HAPPENS


# ---- kill -9 through Snakemake ----

def _start(workdir, target):
    cmd = SNAKEMAKE + ["-s", str(REPO / "Snakefile"), "-d", str(workdir), target, "-c2", "--configfile", CONFIG]
    return subprocess.Popen(cmd, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def _kill_when(proc, ready, timeout=300, poll=0.02):
    """SIGKILL Snakemake and every process under it (job, env workers) once `ready()` holds."""
    deadline = time.time() + timeout
    try:
        while not ready():
            assert proc.poll() is None, "the job ended before it could be killed"
            assert time.time() < deadline, "the job never reached the point to kill it at"
            time.sleep(poll)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _partial(path):
    """Finished records of a partial log (its first line is the fingerprint header)."""
    if not path.exists():
        return []
    lines = path.read_text().split("\n")[1:]
    out = []
    for line in lines:
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            break  # empty tail or a torn last line
    return out


class Reference:
    """Move a job's outputs (and their provenance sidecars) aside; put them back afterwards, with their
    modification times, so the shared smoke run stays complete and up to date."""

    def __init__(self, workdir, paths, keep):
        self.workdir, self.keep = Path(workdir), Path(keep)
        self.paths = [p for rel in paths for p in (Path(rel), Path(rel + ".provenance.json"))]

    def __enter__(self):
        for p in self.paths:
            if (self.workdir / p).exists():
                (self.keep / p).parent.mkdir(parents=True, exist_ok=True)
                shutil.move(self.workdir / p, self.keep / p)
        return self

    def __exit__(self, *exc):
        for p in self.paths:
            if (self.keep / p).exists():
                here = self.workdir / p
                if here.is_dir():
                    shutil.rmtree(here)
                else:
                    here.unlink(missing_ok=True)
                shutil.move(self.keep / p, here)
        snakemake("--unlock", "--configfile", CONFIG, workdir=self.workdir)


def _without(record, fields):
    return {k: v for k, v in record.items() if k not in fields}


def _planned(workdir, target):
    return job_counts(snakemake("-n", target, "--configfile", CONFIG, workdir=workdir).stdout)


def test_collection_killed_midway_resumes_and_matches(smoke_run, tmp_path):
    out = "results/trajectories/expert"
    traj, stats = smoke_run / out / "train.jsonl", smoke_run / out / "stats.json"
    partial = smoke_run / out / ".train.partial.jsonl"
    with Reference(smoke_run, [f"{out}/train.jsonl", f"{out}/stats.json"], tmp_path / "ref") as ref:
        reference = read_jsonl(ref.keep / out / "train.jsonl")
        ref_stats = json.loads((ref.keep / out / "stats.json").read_text())
        total = ref_stats["stats"]["episodes_run"]
        _kill_when(_start(smoke_run, f"{out}/train.jsonl"), lambda: len(_partial(partial)) >= 1)
        before = _partial(partial)
        assert 1 <= len(before) < total, "the kill should land while the collection is midway"
        assert not traj.exists() and not stats.exists()  # nothing half-done looks complete
        snakemake("--unlock", "--configfile", CONFIG, workdir=smoke_run)
        assert _planned(smoke_run, f"{out}/train.jsonl").get("collect_trajectories") == 1

        snakemake(f"{out}/train.jsonl", "-c2", "--configfile", CONFIG, workdir=smoke_run)
        log = (smoke_run / "results/logs/trajectories/expert.log").read_text()
        assert f"resumed {len(before)} finished tries" in log
        after = read_jsonl(traj)
        assert [_without(t, {"seconds"}) for t in after] == [_without(t, {"seconds"}) for t in reference]
        for b in before:  # a try finished before the kill kept its wall-clock seconds: it was not replayed
            if b["won"]:
                match = [t for t in after if t["trajectory_id"] == f"{b['base_task_id']}#a{b['attempt']}"]
                assert match and match[0]["seconds"] == b["seconds"]
        assert json.loads(stats.read_text()) == ref_stats
        assert not partial.exists()


def _tensors(folder):
    from safetensors.torch import load_file

    return load_file(str(folder / "adapter_model.safetensors"))


TRAINER_TIMING = {"train_runtime", "train_samples_per_second", "train_steps_per_second"}


def test_lora_killed_after_a_checkpoint_resumes_from_it(smoke_run, tmp_path):
    out = "results/lora/tiny-random/full/r2_lr1e-03"
    adapter = smoke_run / out
    work = adapter.with_name(f".{adapter.name}.work")
    checkpoints = []

    def checkpointed():
        checkpoints[:] = sorted(int(d.name.split("-")[1]) for d in work.glob("checkpoint-*")
                                if (d / "trainer_state.json").exists())
        return bool(checkpoints)

    with Reference(smoke_run, [out], tmp_path / "ref") as ref:
        _kill_when(_start(smoke_run, out), checkpointed, poll=0.01)
        assert checkpoints and not adapter.exists(), "the kill should land after a checkpoint, before the end"
        snakemake("--unlock", "--configfile", CONFIG, workdir=smoke_run)
        assert _planned(smoke_run, out).get("train_lora") == 1
        last = max(int(d.name.split("-")[1]) for d in work.glob("checkpoint-*")
                   if (d / "trainer_state.json").exists())

        snakemake(out, "-c2", "--configfile", CONFIG, workdir=smoke_run)
        summary = json.loads((adapter / "train_summary.json").read_text())
        reference = json.loads((ref.keep / out / "train_summary.json").read_text())
        assert summary["resumed_from_step"] == last >= 1 and reference["resumed_from_step"] == 0
        # Not timing, but expected to differ: where this run started, and Trainer's mean training loss,
        # which after a resume averages only the steps run since (the loss curve itself is complete).
        # tokens_per_second: timing, and None after a resume (only part of the run was timed).
        differ = {"seconds", "resumed_from_step", "train_loss", "tokens_per_second"}
        assert summary["tokens_per_second"] is None and reference["tokens_per_second"] > 0
        assert _without(summary, differ) == _without(reference, differ)
        log = json.loads((adapter / "trainer_log.json").read_text())
        ref_log = json.loads((ref.keep / out / "trainer_log.json").read_text())
        assert log["loss_curve"] == ref_log["loss_curve"]
        assert [_without(h, TRAINER_TIMING | {"train_loss"}) for h in log["log_history"]] == \
               [_without(h, TRAINER_TIMING | {"train_loss"}) for h in ref_log["log_history"]]
        a, b = _tensors(adapter), _tensors(ref.keep / out)
        assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)  # bit-exact on the CPU
        assert not work.exists()


def _csv(path):
    import csv

    return list(csv.DictReader(open(path)))


def test_evaluation_killed_midway_resumes_and_matches(smoke_run, tmp_path):
    out = "results/eval/valid_unseen/tiny-random/base/none"
    files = [f"{out}/{name}" for name in ("episodes.jsonl", "summary.csv", "provenance.json")]
    partial = smoke_run / out / ".episodes.partial.jsonl"
    with Reference(smoke_run, files, tmp_path / "ref") as ref:
        _kill_when(_start(smoke_run, f"{out}/summary.csv"), lambda: len(_partial(partial)) >= 2)
        before = _partial(partial)
        assert 2 <= len(before) < 6, "the kill should land while the evaluation is midway"
        assert not any((smoke_run / f).exists() for f in files)  # nothing half-done looks complete
        snakemake("--unlock", "--configfile", CONFIG, workdir=smoke_run)
        assert _planned(smoke_run, f"{out}/summary.csv").get("evaluate") == 1

        snakemake(f"{out}/summary.csv", "-c2", "--configfile", CONFIG, workdir=smoke_run)
        log = (smoke_run / "results/logs/eval/valid_unseen/tiny-random/base/none.log").read_text()
        assert f"resumed {len(before)} finished episodes" in log
        after = read_jsonl(smoke_run / out / "episodes.jsonl")
        reference = read_jsonl(ref.keep / out / "episodes.jsonl")
        clock = {"seconds", "started_at", "ended_at"}
        assert [_without(e, clock) for e in after] == [_without(e, clock) for e in reference]
        by_id = {e["task_id"]: e for e in after}
        for e in before:  # same record, same wall-clock seconds: it was not played again
            assert by_id[e["task_id"]] == e
        timing = {"mean_seconds", "tasks_per_hour"}
        assert [_without(r, timing) for r in _csv(smoke_run / out / "summary.csv")] == \
               [_without(r, timing) for r in _csv(ref.keep / out / "summary.csv")]
        prov, ref_prov = (json.loads((d / out / "provenance.json").read_text()) for d in (smoke_run, ref.keep))
        assert _without(prov["summary"], timing) == _without(ref_prov["summary"], timing)
        assert _without(prov, {"summary"}) == _without(ref_prov, {"summary"})
        sidecar = f"{out}/episodes.jsonl.provenance.json"
        code = {"duomem_code_sha256_16"}  # differs only where the code was edited after the smoke run
        assert _without(json.loads((smoke_run / sidecar).read_text()), code) == \
               _without(json.loads((ref.keep / sidecar).read_text()), code)
        assert not partial.exists()

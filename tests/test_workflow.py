"""The Snakemake workflow itself: lint, format, the paper's DAG, config errors, and the smoke run end to end."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, SNAKEMAKE, job_counts, snakemake


def test_lint_and_format_are_clean():
    r = snakemake("--lint", check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run([sys.executable, "-m", "snakefmt", "--check", "Snakefile", "rules"], cwd=REPO,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("override, key", [
    ("max_steps=0", "max_steps"),
    ("seed=-1", "seed"),
    ("teacher=nobody", "teacher"),
    ("evaluation={'memory': ['everything']}", "memory"),
])
def test_bad_config_is_rejected_before_any_job(tmp_path, override, key):
    r = snakemake("-n", "--configfile", str(REPO / "config" / "smoke.yaml"), "--config", override,
                  workdir=tmp_path, check=False)
    assert r.returncode != 0
    assert key in r.stdout + r.stderr
    assert not (tmp_path / "results").exists()


BAD_LORA = [
    ("lora:\n  ranks: [0]\n", "ranks"),
    ("lora:\n  lrs: [-1.0e-5]\n", "lrs"),
    ("lora:\n  lrs: [fast]\n", "lrs"),
    ("lora:\n  models: [expert]\n", "lora.models"),
    ("lora:\n  strategy: everything\n", "strategy"),
]


@pytest.mark.parametrize("overlay, key", BAD_LORA)
def test_bad_lora_config_is_rejected_before_any_job(tmp_path, overlay, key):
    bad = tmp_path / "bad.yaml"
    bad.write_text(overlay)
    r = snakemake("-n", "--configfile", str(REPO / "config" / "smoke.yaml"), str(bad), workdir=tmp_path,
                  check=False)
    assert r.returncode != 0
    assert key in r.stdout + r.stderr
    assert not (tmp_path / "results").exists()


def _read(path):
    return list(csv.DictReader(open(path)))


def test_smoke_run_end_to_end_and_resume_after_kill(smoke_run):
    config = str(REPO / "config" / "smoke.yaml")
    tmp_path = smoke_run
    table = _read(tmp_path / "results" / "table1.csv")
    assert [r["model"] for r in table] == ["tiny-random", "expert"]
    assert all(int(r["n_tasks"]) == 6 for r in table)
    assert {"no_memory_success_pct", "memp_success_pct", "memp_cd_success_pct"} <= set(table[0])
    assert float(table[1]["no_memory_success_pct"]) > 0  # the oracle expert wins some games
    eval_dir = tmp_path / "results/eval/valid_unseen/tiny-random/base/none"
    episodes = [json.loads(x) for x in (eval_dir / "episodes.jsonl").read_text().splitlines()]
    assert len(episodes) == 6 and all(e["steps"] == 30 and not e["won"] for e in episodes)
    assert (tmp_path / "results/table1.md").read_text().startswith("# Table 1")
    t9 = _read(tmp_path / "results" / "table9.csv")
    assert [(r["model"], r["memory"]) for r in t9] == [("tiny-random", "memp"), ("tiny-random", "script")]
    t6 = _read(tmp_path / "results" / "table6.csv")[0]
    assert int(t6["instances"]) == 6 and int(t6["successful_trajectories"]) >= 1
    memp = [json.loads(x) for x in (eval_dir.parent / "memp-cd-k2/episodes.jsonl").read_text().splitlines()]
    assert len(memp) == 6
    # Parameter-space distillation: two adapters trained, the better one on dev chosen and used.
    lora_row = table[0]
    assert {"lora_success_pct", "duomem_success_pct", "delta_vs_no_memory_pts", "delta_vs_memp_rel_pct"} <= set(lora_row)
    selected = json.loads((tmp_path / "results/lora/tiny-random/selected.json").read_text())
    assert [c["label"] for c in selected["candidates"]] == ["full-r2-lr1e-03", "full-r2-lr1e-02"]
    assert selected["selected"] in ("full-r2-lr1e-03", "full-r2-lr1e-02") and selected["selection_split"] == "valid_seen"
    adapter = tmp_path / selected["adapter"]
    assert (adapter / "adapter_model.safetensors").exists() and (adapter / "trainer_log.json").exists()
    prov = json.loads((eval_dir.parent.parent / "lora/memp-cd-k2/provenance.json").read_text())
    assert prov["params"]["adapter_path"] == selected["adapter"]
    t8 = _read(tmp_path / "results" / "table8.csv")
    assert len(t8) == 2 and sum(r["selected"] == "True" for r in t8) == 1
    assert len(_read(tmp_path / "results" / "table4.csv")) == 6
    assert [r["strategy"] for r in _read(tmp_path / "results" / "table5.csv")] == ["full", "last5"]
    assert "lora_params" in _read(tmp_path / "results" / "table2.csv")[0]
    assert job_counts(snakemake("-n", "--configfile", config, workdir=tmp_path).stdout) == {}
    # Changing k reruns only the evaluations that retrieve scripts (and the tables after them).
    overlay = tmp_path / "k1.yaml"
    overlay.write_text("memory:\n  k: 1\n")
    counts = job_counts(snakemake("-n", "--configfile", config, str(overlay), workdir=tmp_path).stdout)
    # script/memp x own/teacher bank (4) and the 4 dev evaluations under MemP+CD; their adapter choice
    # may change, so the 8 evaluations that use a selected adapter follow. Base none/trajectory stay.
    assert counts["evaluate"] == 4 + 4 + 8
    assert counts["select_adapter"] == 1 and "train_lora" not in counts
    assert not {"collect_trajectories", "extract_memories", "embed_memories", "manifest"} & set(counts)

    # Kill -9 the evaluation midway; the rerun keeps every finished episode as it was.
    for f in eval_dir.iterdir():
        f.unlink()
    log = eval_dir / ".episodes.partial.jsonl"
    target = str((eval_dir / "summary.csv").relative_to(tmp_path))
    cmd = SNAKEMAKE + ["-s", str(REPO / "Snakefile"), "-d", str(tmp_path), target, "-c2", "--configfile", config]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and (not log.exists() or len(log.read_text().splitlines()) < 3):
        assert proc.poll() is None, "the evaluation ended before it could be killed"
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = [json.loads(x) for x in log.read_text().splitlines()[1:] if x.strip()]
    assert 2 <= len(before) < 6, "the kill should land while the evaluation is midway"
    assert not (eval_dir / "summary.csv").exists()  # nothing half-done looks complete
    snakemake("--unlock", "--configfile", config, workdir=tmp_path)  # a killed Snakemake leaves its lock
    snakemake(target, "-c2", "--configfile", config, workdir=tmp_path)
    after = {e["task_id"]: e for e in map(json.loads, (eval_dir / "episodes.jsonl").read_text().splitlines())}
    assert len(after) == 6
    for e in before:  # same record, same wall-clock seconds: it was not played again
        assert after[e["task_id"]] == e

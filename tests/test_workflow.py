"""The Snakemake workflow itself: lint, format, and the smoke run end to end (its kill -9 tests: test_faults.py;
config errors: test_config_errors.py)."""

import csv
import json
import os
import re
import subprocess
import sys

from conftest import REPO, job_counts, snakemake


def test_lint_and_format_are_clean():
    r = snakemake("--lint", check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run([sys.executable, "-m", "snakefmt", "--check", "Snakefile", "rules"], cwd=REPO,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def _read(path):
    return list(csv.DictReader(open(path)))


def test_make_main_preloads_tcmalloc_into_the_workflow_only():
    """`make main` runs the workflow with tcmalloc preloaded (vLLM's CPU guide; README, "Memory
    allocator"), the report without it; `TCMALLOC=` turns it off."""

    # not the settings of a `make test` this runs under (MAKEFLAGS carries its command-line variables)
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "TCMALLOC")}

    def commands(*args):
        out = subprocess.run(["make", "-n", "main", *args], cwd=REPO, capture_output=True, text=True, check=True,
                             env=env)
        return [line for line in out.stdout.splitlines() if "snakemake --profile" in line]

    run, report = commands()
    assert run.startswith('LD_PRELOAD="/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4${LD_PRELOAD:+:$LD_PRELOAD}" ')
    assert "LD_PRELOAD" not in report and "--report" in report
    assert not any("LD_PRELOAD" in c for c in commands("TCMALLOC="))


def test_smoke_run_end_to_end(smoke_run):
    config = str(REPO / "config" / "smoke.yaml")
    tmp_path = smoke_run
    table = _read(tmp_path / "results" / "table1.csv")
    assert [r["model"] for r in table] == ["tiny-random", "expert"]
    assert all(int(r["n_tasks"]) == 6 for r in table)
    assert {"no_memory_success_pct", "memp_success_pct", "memp_cd_success_pct"} <= set(table[0])
    assert float(table[1]["no_memory_success_pct"]) > 0  # the oracle expert wins some games
    eval_dir = tmp_path / "results/eval/valid_unseen/tiny-random/base/none"
    episodes = [json.loads(x) for x in (eval_dir / "episodes.jsonl").read_text().splitlines()]
    assert len(episodes) == 6 and all(e["steps"] == 8 and not e["won"] for e in episodes)
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
    # The learning curve (lora.curve: [2]): the base model, each grid adapter after 2 of its 3 samples,
    # then whole.
    curve = _read(tmp_path / "results" / "learning_curve.csv")
    assert [(r["adapter"], r["memory"], int(r["trajectories"])) for r in curve] == [
        (label, memory, n) for label in ("full-r2-lr1e-02", "full-r2-lr1e-03") for memory in ("memp-cd-k2", "none")
        for n in (0, 2, 3)]
    assert curve[0]["success_pct"] == curve[6]["success_pct"]  # one base evaluation for both adapters
    assert all(int(r["n_tasks"]) == 6 and 0 <= float(r["ci_low_pct"]) <= float(r["ci_high_pct"]) for r in curve)
    assert (tmp_path / "results/lora/tiny-random/full/r2_lr1e-03/curve/n2/adapter_model.safetensors").exists()
    prov = json.loads((tmp_path / "results/eval/valid_seen/tiny-random/full-r2-lr1e-03-n2/memp-cd-k2/"
                                  "provenance.json").read_text())
    assert prov["params"]["adapter_path"].endswith("results/lora/tiny-random/full/r2_lr1e-03/curve/n2")
    assert (tmp_path / "results/figures/learning_curve.png").stat().st_size > 10_000
    assert job_counts(snakemake("-n", "--configfile", config, workdir=tmp_path).stdout) == {}
    # Changing k reruns only the evaluations that retrieve scripts (and the tables after them).
    overlay = tmp_path / "k1.yaml"
    overlay.write_text("memory:\n  k: 1\n")
    counts = job_counts(snakemake("-n", "--configfile", config, str(overlay), workdir=tmp_path).stdout)
    # script/memp with the own bank (2; with the teacher's bank at k=1 they exist already: figure 3's
    # k_ablation), the 4 dev evaluations under MemP+CD, the 2 learning-curve points and its base
    # model (also under MemP+CD); their adapter choice may change, so the 8 evaluations that use a
    # selected adapter follow. Base none/trajectory and the curve under No Memory stay.
    assert counts["evaluate"] == 2 + 4 + 2 + 1 + 8
    assert counts["select_adapter"] == 1 and "train_lora" not in counts
    assert not {"collect_trajectories", "extract_memories", "embed_memories", "manifest"} & set(counts)


def test_sft_prompts_with_memory_end_to_end(smoke_run):
    """lora.sft_memory on the smoke run's real banks: only the SFT sets, the adapters and what follows
    them would rerun; the SFT set built by Snakemake carries each layout in turn, with scripts
    retrieved from the banks (the tiny model's own scripts are empty: it writes only newlines)."""
    from duomem.prompts import MEMORY_HEADER
    from duomem.sft_memory import game_of

    config = str(REPO / "config" / "smoke.yaml")
    overlay = smoke_run / "sft-memory.yaml"
    overlay.write_text("lora:\n  sft_memory: [none, memp-self-k2, memp-cd-k2]\n")
    counts = job_counts(snakemake("-n", "--configfile", config, str(overlay), workdir=smoke_run).stdout)
    # an SFT set per strategy (full, last5) and every adapter of both grids (r2 x 2 learning rates each)
    assert counts["build_sft_with_memory"] == 2 and counts["train_lora"] == 4
    assert not {"build_sft", "collect_trajectories", "extract_memories", "embed_memories"} & set(counts)
    target = "results/sft/expert/full.with-memory.tiny-random.jsonl"
    snakemake("--cores", "1", "--configfile", config, str(overlay), "--", target, workdir=smoke_run)
    records = [json.loads(x) for x in (smoke_run / target).read_text().splitlines()]
    wins = [json.loads(x) for x in (smoke_run / "results/trajectories/expert/train.jsonl").read_text().splitlines()]
    assert len(records) == len(wins) >= 3
    assert [r["memory"] for r in records[:3]] == ["none", "memp-self-k2", "memp-cd-k2"]
    cd_bank = json.loads((smoke_run / "results/memory/expert/memories.json").read_text())["memories"]
    for r in records:
        first = next(m["content"] for m in reversed(r["messages"][:r["train_on"][0]]) if m["role"] == "user")
        assert (MEMORY_HEADER in first) == (r["memory"] != "none")
        if r["memory"] == "memp-cd-k2":  # two teacher scripts, none of the trajectory's own game
            scripts = re.split(r"\nMemory [0-9]+: ", first.split(MEMORY_HEADER)[1])[1:]
            others = {m["script"] for m in cd_bank if game_of(m["task_id"]) != game_of(r["task_id"])}
            assert len(scripts) == 2 and set(scripts) <= others

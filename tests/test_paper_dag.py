"""The paper config's DAG: every job of the paper is planned, and one changed value plans exactly its dependents."""

import time

from conftest import REPO, job_counts, snakemake


def test_paper_config_plans_every_evaluation(tmp_path):
    paper = str(REPO / "config.yaml")
    t0 = time.time()
    r = snakemake("-n", "results/table1.csv", "--configfile", paper, workdir=tmp_path)
    elapsed = time.time() - t0
    # Table 1: No Memory, MemP, MemP+CD for 11 students; No Memory and MemP (own bank) for the teacher.
    # + LoRA and DuoMem (MemP / MemP+CD with the selected adapter) for the 4 LoRA students, whose
    # adapters are chosen by 12 dev evaluations each.
    assert job_counts(r.stdout)["evaluate"] == 11 * 3 + 2 + 4 * 2 + 4 * 12
    counts = job_counts(snakemake("-n", "--configfile", paper, workdir=tmp_path).stdout)
    # 11 students x (none, trajectory, script, script+CD, memp, memp+CD) + the teacher x 4
    # (no CD bank of its own) + figure 3's k = 1..9 for Qwen3-14B (Script and MemP, CD) + the LoRA jobs.
    assert counts["evaluate"] == 11 * 6 + 4 + 9 * 2 + 72 + 4 * 6 + 2 * 2
    assert counts["extract_memories"] == 12 and counts["embed_memories"] == 12
    assert counts["collect_trajectories"] == 1 and counts["embed_tasks"] == 2  # test + dev queries
    assert counts["manifest"] == 3 and counts["table1"] == 1
    assert elapsed < 30


def test_paper_config_plans_the_lora_grid(tmp_path):
    counts = job_counts(snakemake("-n", "--configfile", str(REPO / "config.yaml"), workdir=tmp_path).stdout)
    # 4 LoRA students x 3 ranks x 4 lrs (Full History) + Qwen3-4B's Latest Only and Last-5 grids.
    assert counts["train_lora"] == 4 * 12 + 2 * 12
    assert counts["select_adapter"] == 4 and counts["select_strategy_adapter"] == 2
    assert counts["build_sft"] == 3
    # + one dev evaluation per adapter, + every memory configuration with the selected adapter,
    # + Latest Only / Last-5 adapters under No Memory and MemP+CD (table 5).
    assert counts["evaluate"] == 11 * 6 + 4 + 9 * 2 + 72 + 4 * 6 + 2 * 2
    assert {f"table{i}" for i in (1, 2, 3, 4, 5, 6, 8, 9)} <= set(counts)

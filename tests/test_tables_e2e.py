"""The smoke run's tables, figures, paper comparison and viewer pages: every one its configuration can
fill exists and agrees with the per-episode records it was built from."""

import csv
import json

import pytest
from scipy.stats import binomtest

from conftest import REPO, SMOKE_CONFIG, job_counts, snakemake
from duomem.data import TASK_TYPES
from duomem.io import read_jsonl
from duomem.paired import TYPE_SHORT

TYPES = dict(zip(TYPE_SHORT.values(), TASK_TYPES))


def rows(path):
    return list(csv.DictReader(open(path)))


def episodes(results, model, adapter, memory, split="valid_unseen"):
    return read_jsonl(results / "eval" / split / model / adapter / memory / "episodes.jsonl")


def success(eps, task_type=None):
    eps = [e for e in eps if task_type is None or e["task_type"] == task_type]
    return round(100 * sum(e["won"] for e in eps) / len(eps), 2)


def check_delta(row, prefix, base, new):
    """A Δ's discordant counts and exact McNemar p-value, recomputed from the two episode lists."""
    a = {e["task_id"]: e["won"] for e in base}
    b = {e["task_id"]: e["won"] for e in new}
    lost = sum(a[t] and not b[t] for t in a)
    gained = sum(b[t] and not a[t] for t in a)
    assert (int(row[f"{prefix}_gained"]), int(row[f"{prefix}_lost"])) == (gained, lost)
    p = binomtest(min(lost, gained), lost + gained).pvalue if lost + gained else 1.0
    assert float(row[f"{prefix}_p_mcnemar"]) == pytest.approx(p, abs=1e-4)


@pytest.fixture(scope="module")
def results(smoke_run):
    return smoke_run / "results"


def test_table7_lists_every_evaluation_with_per_type_success(results):
    t7 = rows(results / "table7.csv")
    memories = ["none", "script-self-k2", "script-cd-k2", "trajectory", "memp-self-k2", "memp-cd-k2"]
    assert [(r["model"], r["memory"]) for r in t7] == [("tiny-random", m) for m in memories] + [("expert", "none")]
    for r in t7:
        eps = episodes(results, r["model"], "base", r["memory"])
        assert int(r["n_tasks"]) == len(eps) == 6
        assert float(r["success_pct"]) == success(eps)
        for short, ttype in TYPES.items():
            assert float(r[f"{short}_pct"]) == success(eps, ttype)
        if r["memory"] != "none":
            check_delta(r, "delta_vs_none", episodes(results, r["model"], "base", "none"), eps)
    assert (results / "table7.md").read_text().startswith("# Table 7")


def test_delta_columns_of_tables_1_4_5_9_match_the_episodes(results):
    t1 = {r["model"]: r for r in rows(results / "table1.csv")}["tiny-random"]
    duo = episodes(results, "tiny-random", "lora", "memp-cd-k2")
    check_delta(t1, "delta_vs_no_memory", episodes(results, "tiny-random", "base", "none"), duo)
    check_delta(t1, "delta_vs_memp", episodes(results, "tiny-random", "base", "memp-self-k2"), duo)
    none = episodes(results, "tiny-random", "base", "none")  # +CD and +LoRA each against No Memory
    check_delta(t1, "memp_cd_vs_no_memory", none, episodes(results, "tiny-random", "base", "memp-cd-k2"))
    check_delta(t1, "lora_vs_no_memory", none, episodes(results, "tiny-random", "lora", "memp-self-k2"))
    assert float(t1["duomem_heat_pct"]) == success(duo, TYPES["heat"])
    for r in rows(results / "table4.csv"):
        check_delta(r, "delta", episodes(results, r["model"], "base", r["memory"]),
                    episodes(results, r["model"], "lora", r["memory"]))
    for r in rows(results / "table9.csv"):
        kind = r["memory"]
        check_delta(r, "delta_cd", episodes(results, r["model"], "base", f"{kind}-self-k2"),
                    episodes(results, r["model"], "base", f"{kind}-cd-k2"))
    last5 = {r["strategy"]: r for r in rows(results / "table5.csv")}["last5"]
    for memory in ("none", "memp-cd-k2"):
        check_delta(last5, f"{memory}_delta_vs_full", episodes(results, "tiny-random", "lora", memory),
                    episodes(results, "tiny-random", "lora-last5", memory))


def test_figures_exist_and_figure3_matches_its_evaluations(results):
    figures = results / "figures"
    for name in ("figure3", "success_by_type", "efficiency", "lora_grid", "loss_curves"):
        assert (figures / f"{name}.png").read_bytes().startswith(b"\x89PNG"), name
        assert (figures / f"{name}.pdf").read_bytes().startswith(b"%PDF"), name
    f3 = rows(figures / "figure3.csv")
    assert sorted((r["memory"], int(r["k"])) for r in f3) == [("memp", 1), ("memp", 2), ("script", 1), ("script", 2)]
    for r in f3:
        eps = episodes(results, "tiny-random", "base", f"{r['memory']}-cd-k{r['k']}")
        assert float(r["success_pct"]) == success(eps)


def test_paper_comparison_is_empty_with_a_note_and_table10_is_not_planned(results, smoke_run):
    assert rows(results / "paper_comparison.csv") == []
    note = (results / "paper_comparison.md").read_text()
    assert "No evaluation of this configuration matches" in note and "tiny-random" in note
    assert not (results / "table10.csv").exists()
    r = snakemake("-n", "--configfile", str(SMOKE_CONFIG), workdir=smoke_run)
    assert job_counts(r.stdout) == {}  # every target of `rule all` is built, table 10 is not one


def test_every_evaluation_has_a_viewer_page(results):
    evals = {p.parent.relative_to(results / "eval") for p in (results / "eval").rglob("summary.csv")
             if "valid_unseen" in p.parts}
    pages = {p.relative_to(results / "viewer").with_suffix("") for p in (results / "viewer").rglob("*.html")}
    assert evals == pages
    page = (results / "viewer/valid_unseen/tiny-random/base/memp-cd-k2.html").read_text()
    first = episodes(results, "tiny-random", "base", "memp-cd-k2")[0]
    assert json.dumps(first["task_id"]) in page and "Here are procedural memories" in page


def test_paper_config_plans_every_table_figure_and_viewer(tmp_path):
    paper = str(REPO / "config.yaml")
    counts = job_counts(snakemake("-n", "--configfile", paper, workdir=tmp_path).stdout)
    for rule in [f"table{i}" for i in range(1, 11)] + ["paper_comparison", "figure3", "figure_success_by_type",
                                                       "figure_efficiency", "figure_lora_grid", "figure_loss_curves"]:
        assert counts[rule] == 1, rule
    assert counts["viewer"] == 11 * 6 + 4 + 9 * 2 + 4 * 6 + 2 * 2  # every test-split evaluation
    # Table 4 needs its 4 models x 6 memory configurations with and without LoRA (and the dev grid
    # that selects the adapters), nothing else.
    t4 = job_counts(snakemake("-n", "results/table4.csv", "--configfile", paper, workdir=tmp_path).stdout)
    assert t4["evaluate"] == 4 * 6 * 2 + 4 * 12 and not {"viewer", "table7", "table1"} & set(t4)
    # Every number of paper_numbers.json matches the paper config: 15 table-1 cells + the teacher's best
    # of 4 configurations, 2 LoRA-alone, Qwen3-8B, 2 input strategies, 3 of figure 3, 2 of table 10, 2
    # of Qwen3-4B-Thinking: 31 test evaluations, + the dev grids behind the 3 selected adapters used.
    pc = job_counts(snakemake("-n", "results/paper_comparison.csv", "--configfile", paper, workdir=tmp_path).stdout)
    assert pc["evaluate"] == 15 + 4 + 2 + 1 + 2 + 3 + 2 + 2 + 3 * 12 + 2 * 12

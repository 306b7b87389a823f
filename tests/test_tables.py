"""Table, statistics, figure and paper-comparison functions on small evaluation outputs of the real shape
(episodes.jsonl + summary.csv written by the evaluation's own summary code)."""

import json

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest

from duomem import figures, model_tables, paper, tables
from duomem.data import TASK_TYPES, DataError
from duomem.evaluate import write_summary_csv
from duomem.io import write_jsonl_atomic
from duomem.paired import TYPE_SHORT, mean_interval, paired_test
from duomem.stats import summarise

TASKS = [(f"valid_unseen/{t}-{i}", t) for t in TASK_TYPES for i in range(2)]  # 12 tasks, 2 per type


def make_eval(root, name, won_ids, steps=30, seconds=2.0, tasks=TASKS):
    """An evaluation folder: `won_ids` are the tasks won; returns its summary.csv path (as a string)."""
    records = []
    for i, (tid, ttype) in enumerate(tasks):
        won = tid in won_ids
        n = 10 + i % 5 if won else steps
        turns = [{"completion": "Thought: go.\nAction: look", "action": "look", "problem": None, "admissible": True,
                  "observation": "You see nothing."} for _ in range(n)]
        records.append({"task_id": tid, "task_type": ttype, "task": f"task {tid}", "game": f"{tid}/game.tw-pddl",
                        "won": won, "steps": n, "seconds": seconds + i * 0.1, "invalid_steps": 0,
                        "actions": ["look"] * n, "prompt_tokens": 0, "completion_tokens": 0,
                        "first_observation": f"You are in a room.\n\nYour task is to: task {tid}.", "turns": turns})
    d = root / name
    write_jsonl_atomic(d / "episodes.jsonl", records)
    write_summary_csv(d / "summary.csv", summarise(records))
    return str(d / "summary.csv")


def ids(*idx):
    return {TASKS[i][0] for i in idx}


def test_paired_test_counts_discordant_tasks_and_matches_the_binomial_test(tmp_path):
    base = make_eval(tmp_path, "base", ids(0, 1, 2))
    new = make_eval(tmp_path, "new", ids(1, 2, 3, 4, 5, 6, 7))
    t = paired_test(base, new)
    assert (t["n_paired"], t["lost"], t["gained"]) == (12, 1, 5)
    # exact McNemar = two-sided binomial test on the discordant pairs
    assert t["p_value"] == pytest.approx(binomtest(1, 6, 0.5).pvalue, abs=1e-4)
    same = paired_test(base, base)
    assert (same["lost"], same["gained"], same["p_value"]) == (0, 0, 1.0)


def test_paired_test_uses_only_common_tasks(tmp_path):
    base = make_eval(tmp_path, "base", ids(0), tasks=TASKS[:6])
    new = make_eval(tmp_path, "new", ids(0, 5, 8), tasks=TASKS[4:])
    t = paired_test(base, new)
    assert (t["n_paired"], t["lost"], t["gained"]) == (2, 0, 1)
    with pytest.raises(DataError, match="no common tasks"):
        paired_test(make_eval(tmp_path, "a", set(), tasks=TASKS[:2]), make_eval(tmp_path, "b", set(), tasks=TASKS[2:4]))


def test_mean_interval_is_a_student_t_interval():
    m, low, high = mean_interval([10, 12, 14, 16])
    assert m == 13 and low < 13 < high
    assert high - low == pytest.approx(2 * 3.182446 * np.std([10, 12, 14, 16], ddof=1) / 2, rel=1e-4)
    assert mean_interval([30, 30, 30]) == (30, 30, 30)


def test_table1_delta_columns_and_task_types(tmp_path):
    cols = {"no_memory": [make_eval(tmp_path, "nm", ids(0)), make_eval(tmp_path, "t", ids(*range(10)))],
            "memp": [make_eval(tmp_path, "memp", ids(0, 2, 4)), None],
            "lora": [make_eval(tmp_path, "lora", ids(3, 4, 5, 6, 7)), None],
            "duomem": [make_eval(tmp_path, "duo", ids(2, 3, 4, 5, 6, 8)), None]}
    df = tables.table1(cols, ["student", "teacher"], "teacher", tmp_path / "t1.csv", tmp_path / "t1.md")
    s = df.iloc[0]
    # +LoRA against No Memory (issue 15's test): 5 gained, 1 lost
    assert (s["lora_vs_no_memory_gained"], s["lora_vs_no_memory_lost"]) == (5, 1)
    assert s["lora_vs_no_memory_p_mcnemar"] == pytest.approx(binomtest(1, 6).pvalue, abs=1e-4)
    assert "memp_cd_vs_no_memory_gained" not in df.columns  # no +CD column here
    assert s["duomem_success_pct"] == 50.0 and s["no_memory_success_pct"] == pytest.approx(8.33)
    assert s["delta_vs_no_memory_pts"] == pytest.approx(41.67)
    assert (s["delta_vs_no_memory_gained"], s["delta_vs_no_memory_lost"]) == (6, 1)
    assert s["delta_vs_no_memory_p_mcnemar"] == pytest.approx(binomtest(1, 7).pvalue, abs=1e-4)
    assert (s["delta_vs_memp_gained"], s["delta_vs_memp_lost"]) == (4, 1)
    # per task type: tasks 2,3 are look (both won), 4,5 clean, 6 heat, 8 cool
    assert s["duomem_look_pct"] == 100.0 and s["duomem_heat_pct"] == 50.0 and s["duomem_pick_pct"] == 0.0
    assert s["no_memory_pick_pct"] == 50.0
    teacher = df.iloc[1]
    assert teacher["role"] == "teacher" and pd.isna(teacher["delta_vs_no_memory_pts"])
    md = (tmp_path / "t1.md").read_text()
    assert md.startswith("# Table 1") and "## Success (%) by task type" in md and "McNemar" in md
    csv = pd.read_csv(tmp_path / "t1.csv")
    assert {f"duomem_{t}_pct" for t in TYPE_SHORT.values()} <= set(csv.columns)


def test_table4_5_9_carry_paired_tests(tmp_path):
    a, b = make_eval(tmp_path, "a", ids(0, 1)), make_eval(tmp_path, "b", ids(1, 2, 3))
    t4 = tables.table4([("m", "none", a, b)], tmp_path / "4.csv", tmp_path / "4.md").iloc[0]
    assert (t4["delta_pts"], t4["delta_gained"], t4["delta_lost"]) == (pytest.approx(8.33), 2, 1)
    assert t4["base_ci95"].startswith("[") and t4["delta_p_mcnemar"] == 1.0
    t9 = tables.table9([("m", "memp", a, b)], tmp_path / "9.csv", tmp_path / "9.md").iloc[0]
    assert t9["delta_cd_pct_points"] == pytest.approx(8.33) and t9["delta_cd_relative_pct"] == 50.0
    assert (t9["delta_cd_gained"], t9["delta_cd_lost"]) == (2, 1) and t9["teacher_memories_ci95"].startswith("[")
    rows = [("m", "full", "none", a), ("m", "last5", "none", b), ("m", "full", "memp-cd-k2", b),
            ("m", "last5", "memp-cd-k2", a)]
    t5 = tables.table5(rows, tmp_path / "5.csv", tmp_path / "5.md", main_strategy="full")
    last5 = t5.set_index("strategy").loc["last5"]
    assert (last5["none_delta_vs_full_gained"], last5["none_delta_vs_full_lost"]) == (2, 1)
    assert (last5["memp-cd-k2_delta_vs_full_gained"], last5["memp-cd-k2_delta_vs_full_lost"]) == (1, 2)
    assert pd.isna(t5.set_index("strategy").loc["full", "none_delta_vs_full_pts"])


def test_table7_every_configuration_with_delta_against_no_memory(tmp_path):
    rows = [("m", "none", make_eval(tmp_path, "n", set())), ("m", "memp-cd-k2", make_eval(tmp_path, "c", ids(0, 11))),
            ("t", "none", make_eval(tmp_path, "t", ids(1)))]
    df = model_tables.table7(rows, tmp_path / "7.csv", tmp_path / "7.md")
    assert list(zip(df["model"], df["memory"])) == [("m", "none"), ("m", "memp-cd-k2"), ("t", "none")]
    memp = df.iloc[1]
    assert memp["success_pct"] == pytest.approx(16.67) and memp["pick_pct"] == 50.0 and memp["pick2_pct"] == 50.0
    assert (memp["delta_vs_none_gained"], memp["delta_vs_none_lost"]) == (2, 0)
    assert pd.isna(df.iloc[0]["delta_vs_none_pts"]) and pd.isna(df.iloc[2]["delta_vs_none_pts"])
    assert {"mean_steps", "mean_seconds", "ci95", "n_tasks"} <= set(df.columns)


def test_table10_slowdown_and_delta(tmp_path):
    plain = make_eval(tmp_path, "p", ids(0), seconds=2.0)
    think = make_eval(tmp_path, "t", ids(0, 1, 2), seconds=10.0)
    df = model_tables.table10([("q", "q-thinking", "none", plain, think)], tmp_path / "10.csv", tmp_path / "10.md")
    row = df.iloc[0]
    s_plain = pd.read_csv(plain).set_index("group").loc["all", "mean_seconds"]
    s_think = pd.read_csv(think).set_index("group").loc["all", "mean_seconds"]
    assert row["slowdown"] == pytest.approx(s_think / s_plain, abs=0.01) and row["slowdown"] > 1
    assert (row["delta_thinking_gained"], row["delta_thinking_lost"]) == (2, 0)
    assert row["thinking_success_pct"] == 25.0 and row["non_thinking_mean_steps"] > row["thinking_mean_steps"]


def _png_size(path):
    import matplotlib.image

    return matplotlib.image.imread(path).shape


def test_figures_are_written_as_png_and_pdf(tmp_path):
    rows = [("m", kind, k, make_eval(tmp_path, f"{kind}{k}", ids(*range(k + (kind == "memp")))))
            for kind in ("script", "memp") for k in (1, 2, 4)]
    figures.figure3_from_summaries(rows, tmp_path / "f3.csv", tmp_path / "f3.png", tmp_path / "f3.pdf")
    data = pd.read_csv(tmp_path / "f3.csv")
    assert list(data["k"]) == [1, 2, 4, 1, 2, 4] and list(data["memory"]) == ["memp"] * 3 + ["script"] * 3
    assert data.loc[data["memory"] == "memp", "success_pct"].tolist() == pytest.approx([16.67, 25.0, 41.67])
    assert (tmp_path / "f3.pdf").read_bytes().startswith(b"%PDF")
    assert _png_size(tmp_path / "f3.png")[0] > 100

    t7 = [("m", "none", make_eval(tmp_path, "n", set())), ("m", "memp-cd-k2", make_eval(tmp_path, "c", ids(0, 1)))]
    model_tables.table7(t7, tmp_path / "7.csv", tmp_path / "7.md")
    figures.success_by_type(tmp_path / "7.csv", tmp_path / "bt.png", tmp_path / "bt.pdf")
    cols = {"no_memory": [t7[0][2]], "memp_cd": [t7[1][2]]}
    tables.table2(cols, ["m"], {}, tmp_path / "2.csv", tmp_path / "2.md")
    figures.efficiency(tmp_path / "2.csv", tmp_path / "ef.png", tmp_path / "ef.pdf")
    pd.DataFrame([{"model": "m", "strategy": "full", "rank": r, "lr": lr, "dev_success_pct": 10.0 * r,
                   "dev_ci95": "[0, 1]", "dev_mean_steps": 20, "selected": (r, lr) == (8, "1e-05")}
                  for r in (8, 16) for lr in ("1e-06", "1e-05")]).to_csv(tmp_path / "8.csv", index=False)
    figures.lora_grid(tmp_path / "8.csv", tmp_path / "grid.png", tmp_path / "grid.pdf")
    runs = []
    for label in ("full-r8-lr1e-05", "full-r8-lr1e-06"):
        d = tmp_path / label
        d.mkdir()
        curve = [{"step": s, "loss": 2.0 / s} for s in range(1, 6)]
        (d / "trainer_log.json").write_text(json.dumps({"loss_curve": curve, "log_history": curve}))
        runs.append(("m", label, str(d)))
    figures.loss_curves(runs, tmp_path / "loss.png", tmp_path / "loss.pdf")
    for name in ("bt", "ef", "grid", "loss"):
        assert _png_size(tmp_path / f"{name}.png")[0] > 100
        assert (tmp_path / f"{name}.pdf").read_bytes().startswith(b"%PDF")


def test_paper_entries_hold_the_spec_numbers():
    entries = paper.paper_entries()
    t1 = {(e["model"], e["adapter"], e["memories"][0]): e["value"] for e in entries if e["table"] == "table1"}
    assert t1[("qwen3-4b-instruct", "lora", "memp-cd")] == 77.9 and t1[("gemma4-e2b-it", "base", "none")] == 2.1
    assert t1[("gemma3-12b-it", "lora", "memp-self")] == 56.4 and t1[("qwen2.5-72b-instruct", "base", "none")] == 87.1
    assert len(t1) == 3 * 5 + 1  # three students x five columns, and the teacher's best configuration
    assert all(0 <= e["value"] <= 100 for e in entries if e["metric"] == "success_pct")
    assert all(e["k"] == 10 and e["max_steps"] == 30 for e in entries if e["table"] != "figure3")


def _paper_rows(models, max_steps, planned, tmp=None):
    def path(m, a, label):
        return f"{tmp or 'results/eval/valid_unseen'}/{m}/{a}/{label}/summary.csv"

    return paper.matching_rows(paper.paper_entries(), models, max_steps,
                               lambda s: "lora" if s == "full" else f"lora-{s}", path,
                               {path(*p) for p in planned})


def test_paper_rows_only_where_the_configuration_matches():
    qwen = {"qwen3-4b-instruct": {}}
    planned = [("qwen3-4b-instruct", "base", "none"), ("qwen3-4b-instruct", "lora", "memp-cd-k10"),
               ("qwen3-4b-instruct", "base", "memp-cd-k3")]
    rows = _paper_rows(qwen, 30, planned)
    got = {(r[0], r[2], tuple(r[3]), r[4]) for r in rows}
    assert got == {("table1", "base", ("none",), "success_pct"), ("table1", "lora", ("memp-cd-k10",), "success_pct"),
                   ("table2", "base", ("none",), "mean_steps"), ("table2", "base", ("none",), "mean_seconds"),
                   ("table2", "lora", ("memp-cd-k10",), "mean_steps"),
                   ("table2", "lora", ("memp-cd-k10",), "mean_seconds")}
    assert _paper_rows(qwen, 20, planned) == []  # another step limit is another protocol
    assert _paper_rows({"smollm2-135m-instruct": {}, "expert": {}}, 30,
                       [("smollm2-135m-instruct", "base", "none")]) == []
    assert _paper_rows(qwen, 30, [("qwen3-4b-instruct", "base", "memp-cd-k3")]) == []  # k = 3 is not the paper's


def test_paper_comparison_interval_and_empty_note(tmp_path):
    root = tmp_path / "results/eval/valid_unseen"
    make_eval(root / "qwen3-4b-instruct" / "base", "none", set())  # 0/12: Wilson [0, 24.2] holds 4.3
    make_eval(root / "qwen3-4b-instruct" / "lora", "memp-cd-k10", ids(*range(12)))  # 12/12: Wilson [75.8, 100]
    planned = [("qwen3-4b-instruct", "base", "none"), ("qwen3-4b-instruct", "lora", "memp-cd-k10")]
    rows = _paper_rows({"qwen3-4b-instruct": {}}, 30, planned, tmp=root)
    df = paper.paper_comparison(rows, ["qwen3-4b-instruct"], tmp_path / "pc.csv", tmp_path / "pc.md")
    s = df.set_index(["adapter", "metric"])
    assert s.loc[("base", "success_pct"), "ours"] == 0.0 and s.loc[("base", "success_pct"), "difference"] == -4.3
    assert bool(s.loc[("base", "success_pct"), "paper_in_ci95"])
    duo = s.loc[("lora", "success_pct")]
    assert duo["ours"] == 100.0 and duo["ci95_low"] == pytest.approx(75.75, abs=0.01)
    assert bool(duo["paper_in_ci95"])  # 77.9 >= 75.75
    steps = s.loc[("base", "mean_steps")]
    assert steps["ours"] == 30.0 and not bool(steps["paper_in_ci95"])  # 29.3 outside [30, 30]
    empty = paper.paper_comparison([], ["smollm2-135m-instruct"], tmp_path / "e.csv", tmp_path / "e.md")
    assert empty.empty and list(pd.read_csv(tmp_path / "e.csv").columns) == paper.COLUMNS
    note = (tmp_path / "e.md").read_text()
    assert "No evaluation of this configuration matches" in note and "qwen3-4b-instruct" in note
    assert "smollm2-135m-instruct" in note

"""Tables across models and memory configurations: table 7 (full inference results), table 10 (thinking
vs non-thinking), the data of figure 3 (success vs k) and of the learning curve (dev success vs
training trajectories). Built only from evaluation summaries and
per-episode records, like duomem.tables."""

import pandas as pd

from .io import write_text_atomic
from .paired import by_type, delta_columns, overall
from .tables import DELTA_NOTE, write_table


def _success(s):
    return {"success_pct": s["success_pct"], "ci95": f"[{s['ci_low_pct']}, {s['ci_high_pct']}]"}


def table7(rows, csv_out, md_out):
    """Table 7: [(model, memory label, summary)] -> success with interval, steps, seconds and success per
    task type for every evaluated model and memory configuration; each configuration's Δ against the
    same model's No Memory run, with its paired test."""
    none = {model: summary for model, memory, summary in rows if memory == "none"}
    out = []
    for model, memory, summary in rows:
        s = overall(summary)
        row = {"model": model, "memory": memory, "n_tasks": int(s["n"]), **_success(s),
               "mean_steps": s["mean_steps"], "mean_seconds": s["mean_seconds"]}
        row.update({f"{t}_pct": pct for t, pct in by_type(summary).items()})
        if memory != "none" and model in none:
            row.update(delta_columns("delta_vs_none", none[model], summary))
        out.append(row)
    return write_table(pd.DataFrame(out), csv_out, md_out,
                       "Table 7: every model and memory configuration on valid_unseen (test), no LoRA",
                       DELTA_NOTE + " Baseline: the same model with No Memory.", id_cols=("model", "memory"))


def table10(rows, csv_out, md_out):
    """Table 10: [(non-thinking model, thinking model, memory, its summary, thinking summary)] -> success,
    steps and seconds of both modes, the slowdown (thinking seconds / non-thinking seconds) and the Δ
    of thinking over non-thinking with its paired test."""
    out = []
    for plain, thinking, memory, a, b in rows:
        sa, sb = overall(a), overall(b)
        row = {"model": plain, "thinking_model": thinking, "memory": memory}
        for prefix, s in (("non_thinking", sa), ("thinking", sb)):
            row.update({f"{prefix}_{k}": v for k, v in _success(s).items()})
            row[f"{prefix}_mean_steps"], row[f"{prefix}_mean_seconds"] = s["mean_steps"], s["mean_seconds"]
        row["slowdown"] = round(sb["mean_seconds"] / sa["mean_seconds"], 2) if sa["mean_seconds"] else float("nan")
        row.update(delta_columns("delta_thinking", a, b))
        out.append(row)
    return write_table(pd.DataFrame(out), csv_out, md_out,
                       "Table 10: thinking vs non-thinking mode (valid_unseen, no LoRA)",
                       DELTA_NOTE + " Baseline: the non-thinking mode; slowdown = thinking / non-thinking "
                       "mean seconds per task.")


def k_ablation(rows, csv_out):
    """Figure 3's data: [(model, kind, k, summary)] -> one row per point, with the Wilson interval."""
    out = []
    for model, kind, k, summary in rows:
        s = overall(summary)
        out.append({"model": model, "memory": kind, "k": int(k), "n_tasks": int(s["n"]),
                    "success_pct": s["success_pct"], "ci_low_pct": s["ci_low_pct"], "ci_high_pct": s["ci_high_pct"],
                    "mean_steps": s["mean_steps"]})
    df = pd.DataFrame(out).sort_values(["model", "memory", "k"], kind="stable")
    write_text_atomic(csv_out, df.to_csv(index=False))
    return df


def learning_curve(rows, csv_out):
    """The learning curve's data: [(model, grid label, trajectories, summary, adapter folder, memory)]
    -> one row per point (dev success with its Wilson interval, mean steps, mean invalid steps);
    trajectories 0 is the base model, None the whole adapter: the samples its train_summary.json counts."""
    import json
    from pathlib import Path

    out = []
    for model, label, n, summary, folder, memory in rows:
        if n is None:
            n = json.loads((Path(folder) / "train_summary.json").read_text())["samples"]
        s = overall(summary)
        out.append({"model": model, "adapter": label, "memory": memory, "trajectories": int(n), "n_tasks": int(s["n"]),
                    "success_pct": s["success_pct"], "ci_low_pct": s["ci_low_pct"], "ci_high_pct": s["ci_high_pct"],
                    "mean_steps": s["mean_steps"], "mean_invalid_steps": s.get("mean_invalid_steps")})
    df = pd.DataFrame(out).sort_values(["model", "adapter", "memory", "trajectories"], kind="stable")
    write_text_atomic(csv_out, df.to_csv(index=False))
    return df

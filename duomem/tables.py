"""Paper tables built only from results files."""

import pandas as pd

from .io import write_text_atomic


def _fmt_md(df):
    return df.to_markdown(index=False) + "\n"


def table1(summary_paths, models, teacher, csv_out, md_out):
    """Table 1 (main results) on the test split. Columns appear as their evaluations exist:
    for now No Memory; MemP, +CD, +LoRA and DuoMem come with the distillation stages."""
    rows = []
    for model, path in zip(models, summary_paths):
        overall = pd.read_csv(path).set_index("group").loc["all"]
        rows.append({
            "model": model, "role": "teacher" if model == teacher else "student", "n_tasks": int(overall["n"]),
            "no_memory_success_pct": overall["success_pct"],
            "no_memory_ci95_low": overall["ci_low_pct"], "no_memory_ci95_high": overall["ci_high_pct"],
            "no_memory_mean_steps": overall["mean_steps"], "no_memory_mean_seconds": overall["mean_seconds"],
        })
    df = pd.DataFrame(rows)
    write_text_atomic(csv_out, df.to_csv(index=False))
    write_text_atomic(md_out, "# Table 1: success rate (%) on valid_unseen (test), 95% Wilson intervals\n\n"
                      + _fmt_md(df))
    return df

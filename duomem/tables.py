"""Paper tables 1-6, 8 and 9, built only from results files. Each writes a CSV and a Markdown rendering.

Every success rate carries its 95% Wilson interval (from the evaluation's summary.csv); every Δ between
two configurations carries the exact McNemar test over the same tasks (duomem.paired).
"""

import json
from pathlib import Path

import pandas as pd

from .io import write_text_atomic
from .paired import TYPE_SHORT, by_type, delta_columns, overall

DELTA_NOTE = ("Δ columns: `_pts` percentage points, `_rel_pct` relative change, `_gained` / `_lost` tasks won "
              "only by the newer / only by the baseline configuration (same tasks), `_p_mcnemar` two-sided "
              "exact McNemar p-value.")
TYPE_SUFFIXES = tuple(f"_{s}_pct" for s in TYPE_SHORT.values())
TYPE_COLUMNS = {f"{s}_pct" for s in TYPE_SHORT.values()}


def _is_type_column(name):
    return name.endswith(TYPE_SUFFIXES) or name in TYPE_COLUMNS


def _md(df):
    return df.astype(object).where(df.notna(), None).to_markdown(index=False, missingval="")


def _markdown(df, title, note="", id_cols=("model",)):
    """The table; per-task-type columns go to a second table so the first stays readable."""
    type_cols = [c for c in df.columns if _is_type_column(c)]
    main = df.drop(columns=type_cols)
    text = f"# {title}\n\n" + (_md(main) if len(main) else "(no rows)") + "\n"
    if type_cols:
        ids = [c for c in id_cols if c in df.columns]
        text += "\n## Success (%) by task type\n\n" + _md(df[ids + type_cols]) + "\n"
    if note:
        text += f"\n{note}\n"
    return text


def write_table(df, csv_out, md_out, title, note="", id_cols=("model",)):
    for c in df.columns:  # task counts stay integers where some rows have no Δ
        if c.endswith(("_gained", "_lost")):
            df[c] = df[c].astype("Int64")
    write_text_atomic(csv_out, df.to_csv(index=False))
    write_text_atomic(md_out, _markdown(df, title, note, id_cols))
    return df


def cell(summary):
    """(success %, "[low, high]" Wilson interval, mean steps) of an evaluation."""
    s = overall(summary)
    return s["success_pct"], f"[{s['ci_low_pct']}, {s['ci_high_pct']}]", s["mean_steps"]


def table1(columns, models, teacher, csv_out, md_out):
    """Table 1 (main results, test split). `columns` maps a column name (no_memory, memp, memp_cd, …)
    to the summary paths of `models` in order; a column appears only when its evaluations exist."""
    rows = []
    for i, model in enumerate(models):
        row = {"model": model, "role": "teacher" if model == teacher else "student"}
        for col, paths in columns.items():
            if paths[i] is None:
                continue
            s = overall(paths[i])
            row["n_tasks"] = int(s["n"])
            row[f"{col}_success_pct"] = s["success_pct"]
            row[f"{col}_ci95"] = f"[{s['ci_low_pct']}, {s['ci_high_pct']}]"
            row[f"{col}_mean_steps"] = s["mean_steps"]
            row.update({f"{col}_{t}_pct": pct for t, pct in by_type(paths[i]).items()})
        # The paper's Δ columns: DuoMem against No Memory and against MemP, with a paired test.
        for base in ("no_memory", "memp"):
            if base in columns and "duomem" in columns and columns[base][i] and columns["duomem"][i]:
                row.update(delta_columns(f"delta_vs_{base}", columns[base][i], columns["duomem"][i]))
        # Each distillation space alone (+CD, +LoRA) against No Memory, with the same paired test.
        for col in ("memp_cd", "lora"):
            if "no_memory" in columns and col in columns and columns["no_memory"][i] and columns[col][i]:
                row.update(delta_columns(f"{col}_vs_no_memory", columns["no_memory"][i], columns[col][i]))
        rows.append(row)
    return write_table(pd.DataFrame(rows), csv_out, md_out,
                       "Table 1: success rate (%) on valid_unseen (test), 95% Wilson intervals", DELTA_NOTE)


def table2(columns, models, selections, csv_out, md_out):
    """Table 2 (efficiency): mean steps and seconds per task for each table-1 configuration, and the
    selected adapter's trainable parameters. `selections` maps model -> selected.json."""
    rows = []
    for i, model in enumerate(models):
        row = {"model": model}
        for col, paths in columns.items():
            if paths[i] is not None:
                s = overall(paths[i])
                row[f"{col}_mean_steps"], row[f"{col}_mean_seconds"] = s["mean_steps"], s["mean_seconds"]
                row[f"{col}_tasks_per_hour"] = s.get("tasks_per_hour", float("nan"))
        if model in selections:
            sel = json.loads(Path(selections[model]).read_text())
            row["lora_params"] = sel["trainable_params"]
        rows.append(row)
    return write_table(pd.DataFrame(rows), csv_out, md_out, "Table 2: steps and seconds per task (valid_unseen)",
                       "mean_seconds: latency, an episode's reset to its end while generation.num_envs episodes "
                       "share the model (the paper played one task at a time); tasks_per_hour: throughput, "
                       "tasks over the span from the job's first reset to its last episode's end.")


def table4(rows, csv_out, md_out):
    """Table 4 (LoRA across memory configurations): [(model, memory, base summary, lora summary)]."""
    out = []
    for model, memory, base, lora in rows:
        b, bci, _ = cell(base)
        a, aci, _ = cell(lora)
        row = {"model": model, "memory": memory, "base_success_pct": b, "base_ci95": bci,
               "lora_success_pct": a, "lora_ci95": aci}
        out.append({**row, **delta_columns("delta", base, lora)})
    return write_table(pd.DataFrame(out), csv_out, md_out,
                       "Table 4: LoRA across memory configurations (valid_unseen success %, adapter selected on dev)",
                       DELTA_NOTE + " Baseline: the same memory configuration without LoRA.")


def table5(rows, csv_out, md_out, main_strategy="full"):
    """Table 5 (input strategies): [(model, strategy, memory, summary)] -> one row per model x strategy;
    every other strategy's Δ is taken against `main_strategy` under the same memory configuration."""
    table, paths = {}, {}
    for model, strategy, memory, summary in rows:
        pct, ci, _ = cell(summary)
        row = table.setdefault((model, strategy), {"model": model, "strategy": strategy})
        row[f"{memory}_success_pct"], row[f"{memory}_ci95"] = pct, ci
        paths[model, strategy, memory] = summary
    for (model, strategy, memory), summary in paths.items():
        main = paths.get((model, main_strategy, memory))
        if strategy != main_strategy and main:
            table[model, strategy].update(delta_columns(f"{memory}_delta_vs_{main_strategy}", main, summary))
    return write_table(pd.DataFrame(list(table.values())), csv_out, md_out,
                       "Table 5: LoRA input strategies (valid_unseen success %, best adapter per strategy on dev)",
                       DELTA_NOTE + f" Baseline: the {main_strategy} strategy under the same memory configuration.")


def table8(rows, selections, csv_out, md_out):
    """Table 8 (LoRA grid on dev): [(model, grid label, dev summary)]; marks each model's choice."""
    from .selection import parse_grid_label

    chosen = {m: json.loads(Path(p).read_text())["selected"] for m, p in selections.items()}
    out = []
    for model, label, summary in rows:
        strategy, rank, lr = parse_grid_label(label)
        pct, ci, steps = cell(summary)
        out.append({"model": model, "strategy": strategy, "rank": rank, "lr": lr, "dev_success_pct": pct,
                    "dev_ci95": ci, "dev_mean_steps": steps, "selected": chosen.get(model) == label})
    return write_table(pd.DataFrame(out), csv_out, md_out, "Table 8: LoRA grid on valid_seen (dev) under MemP+CD")


def table9(pairs, csv_out, md_out):
    """Table 9 (CD ablation): `pairs` is [(model, kind, student_summary, teacher_summary)]."""
    rows = []
    for model, kind, own, cd in pairs:
        a, aci, _ = cell(own)
        b, bci, _ = cell(cd)
        d = delta_columns("delta_cd", own, cd)
        rows.append({"model": model, "memory": kind, "student_memories_pct": a, "student_memories_ci95": aci,
                     "teacher_memories_pct": b, "teacher_memories_ci95": bci,
                     "delta_cd_pct_points": d.pop("delta_cd_pts"), "delta_cd_relative_pct": d.pop("delta_cd_rel_pct"),
                     **d})
    return write_table(pd.DataFrame(rows), csv_out, md_out,
                       "Table 9: context distillation, student vs teacher memories (valid_unseen success %)",
                       DELTA_NOTE + " Baseline: the student's own memories.")


def table6(stats_path, teacher, csv_out, md_out):
    """Table 6: teacher trajectory collection statistics."""
    s = json.loads(Path(stats_path).read_text())["stats"]
    row = {"teacher": teacher, "tasks": s["tasks"], "attempts_per_task": s["attempts_per_task"],
           "instances": s["instances"]}
    for k, n in s["solved_at_try"].items():
        row[f"solved_try_{k}"] = n
    for k, pct in s["cumulative_success_pct"].items():
        row[f"cumulative_success_pct_try_{k}"] = pct
    row.update({"successful_trajectories": s["successful_trajectories"],
                "duplicates_dropped": s.get("duplicates_dropped", 0),
                "distinct_trajectories": s.get("distinct_trajectories", s["successful_trajectories"]),
                "mean_steps_successful": s["mean_steps_successful"]})
    retries = s.get("retries_per_instance", len(s["solved_at_try"]) - 1)
    return write_table(pd.DataFrame([row]), csv_out, md_out, "Table 6: teacher trajectory collection",
                       f"An instance is one attempt at a task; an unsolved instance is retried up to {retries} "
                       f"times after its first try (try 1..{retries + 1}). Exact duplicate wins (same task, "
                       "same messages) are dropped; the distinct ones feed the memory bank and the SFT data.")


def table3(names, bank_paths, references_path, token_counter_name, k, csv_out, md_out, selections=()):
    """Table 3 counted with the tokenizer `token_counter_name` (a model folder or a hub id)."""
    from .models import token_counter

    return table3_context(list(zip(names, bank_paths)), references_path, token_counter(token_counter_name), k,
                          csv_out, md_out, selections=selections)


def table3_context(banks, references_path, count_tokens, k, csv_out, md_out, selections=()):
    """Table 3 (context overhead): mean script tokens per bank, reference trajectory tokens,
    extra prompt tokens per task at k (k scripts + one reference trajectory), store size on disk;
    and the mean selected adapter size (bf16, as the paper counts it, and the file on disk)."""
    from .memory import load_memories
    from .prompts import memory_block
    from .references import load_references

    refs = load_references(Path(references_path))
    ref_tokens = {t: sum(count_tokens(m["content"]) for m in msgs) for t, msgs in refs.items()}
    mean_ref = sum(ref_tokens.values()) / len(ref_tokens)
    rows = []
    for name, path in banks:
        mem = load_memories(path)
        script_tokens = sum(m["tokens"] for m in mem) / len(mem)
        block = count_tokens(memory_block([m["script"] for m in mem[:k]]))
        rows.append({"memory_bank": name, "memories": len(mem), "mean_script_tokens": round(script_tokens, 1),
                     "reference_trajectory_tokens": round(mean_ref, 1),
                     f"extra_tokens_per_task_k{k}": round(block + mean_ref),
                     "memory_store_mb": round(Path(path).stat().st_size / 1e6, 3)})
    sels = [json.loads(Path(p).read_text()) for p in selections]
    for row in rows:
        if sels:
            row["mean_adapter_params"] = round(sum(s["trainable_params"] for s in sels) / len(sels))
            row["mean_adapter_mb_bf16"] = round(sum(s["adapter_mb_bf16"] for s in sels) / len(sels), 3)
            row["mean_adapter_mb_on_disk"] = round(
                sum(s["adapter_mb_on_disk"] or 0 for s in sels) / len(sels), 3)
    return write_table(pd.DataFrame(rows), csv_out, md_out,
                       "Table 3: context overhead (tokens of the token_counter tokenizer)", id_cols=("memory_bank",))

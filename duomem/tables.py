"""Paper tables, built only from results files. Each writes a CSV and a Markdown rendering."""

import json
from pathlib import Path

import pandas as pd

from .io import write_text_atomic


def _write(df, csv_out, md_out, title):
    write_text_atomic(csv_out, df.to_csv(index=False))
    write_text_atomic(md_out, f"# {title}\n\n" + df.to_markdown(index=False) + "\n")
    return df


def _overall(summary_path):
    return pd.read_csv(summary_path).set_index("group").loc["all"]


def _delta_pct(new, old):
    return round(100 * (new - old) / old, 1) if old else float("nan")


def table1(columns, models, teacher, csv_out, md_out):
    """Table 1 (main results, test split). `columns` maps a column name (no_memory, memp, memp_cd, …)
    to the summary paths of `models` in order; a column appears only when its evaluations exist."""
    rows = []
    for i, model in enumerate(models):
        row = {"model": model, "role": "teacher" if model == teacher else "student"}
        for col, paths in columns.items():
            if paths[i] is None:
                continue
            s = _overall(paths[i])
            row["n_tasks"] = int(s["n"])
            row[f"{col}_success_pct"] = s["success_pct"]
            row[f"{col}_ci95"] = f"[{s['ci_low_pct']}, {s['ci_high_pct']}]"
            row[f"{col}_mean_steps"] = s["mean_steps"]
        # The paper's Δ columns: DuoMem against No Memory and against MemP (points and relative %).
        for base in ("no_memory", "memp"):
            if "duomem_success_pct" in row and f"{base}_success_pct" in row:
                new, old = row["duomem_success_pct"], row[f"{base}_success_pct"]
                row[f"delta_vs_{base}_pts"] = round(new - old, 2)
                row[f"delta_vs_{base}_rel_pct"] = _delta_pct(new, old)
        rows.append(row)
    return _write(pd.DataFrame(rows), csv_out, md_out,
                  "Table 1: success rate (%) on valid_unseen (test), 95% Wilson intervals")


def table2(columns, models, selections, csv_out, md_out):
    """Table 2 (efficiency): mean steps and seconds per task for each table-1 configuration, and the
    selected adapter's trainable parameters. `selections` maps model -> selected.json."""
    rows = []
    for i, model in enumerate(models):
        row = {"model": model}
        for col, paths in columns.items():
            if paths[i] is not None:
                s = _overall(paths[i])
                row[f"{col}_mean_steps"], row[f"{col}_mean_seconds"] = s["mean_steps"], s["mean_seconds"]
        if model in selections:
            sel = json.loads(Path(selections[model]).read_text())
            row["lora_params"] = sel["trainable_params"]
        rows.append(row)
    return _write(pd.DataFrame(rows), csv_out, md_out, "Table 2: steps and seconds per task (valid_unseen)")


def _cell(summary):
    s = _overall(summary)
    return s["success_pct"], f"[{s['ci_low_pct']}, {s['ci_high_pct']}]", s["mean_steps"]


def table4(rows, csv_out, md_out):
    """Table 4 (LoRA across memory configurations): [(model, memory, base summary, lora summary)]."""
    out = []
    for model, memory, base, lora in rows:
        b, bci, _ = _cell(base)
        a, aci, _ = _cell(lora)
        out.append({"model": model, "memory": memory, "base_success_pct": b, "base_ci95": bci,
                    "lora_success_pct": a, "lora_ci95": aci, "delta_pts": round(a - b, 2)})
    return _write(pd.DataFrame(out), csv_out, md_out,
                  "Table 4: LoRA across memory configurations (valid_unseen success %, adapter selected on dev)")


def table5(rows, csv_out, md_out):
    """Table 5 (input strategies): [(model, strategy, memory, summary)] -> one row per model x strategy."""
    table = {}
    for model, strategy, memory, summary in rows:
        pct, ci, _ = _cell(summary)
        row = table.setdefault((model, strategy), {"model": model, "strategy": strategy})
        row[f"{memory}_success_pct"], row[f"{memory}_ci95"] = pct, ci
    return _write(pd.DataFrame(list(table.values())), csv_out, md_out,
                  "Table 5: LoRA input strategies (valid_unseen success %, best adapter per strategy on dev)")


def table8(rows, selections, csv_out, md_out):
    """Table 8 (LoRA grid on dev): [(model, grid label, dev summary)]; marks each model's choice."""
    from .selection import parse_grid_label

    chosen = {m: json.loads(Path(p).read_text())["selected"] for m, p in selections.items()}
    out = []
    for model, label, summary in rows:
        strategy, rank, lr = parse_grid_label(label)
        pct, ci, steps = _cell(summary)
        out.append({"model": model, "strategy": strategy, "rank": rank, "lr": lr, "dev_success_pct": pct,
                    "dev_ci95": ci, "dev_mean_steps": steps, "selected": chosen.get(model) == label})
    return _write(pd.DataFrame(out), csv_out, md_out,
                  "Table 8: LoRA grid on valid_seen (dev) under MemP+CD")


def table9(pairs, csv_out, md_out):
    """Table 9 (CD ablation): `pairs` is [(model, kind, student_summary, teacher_summary)]."""
    rows = []
    for model, kind, own, cd in pairs:
        a, b = _overall(own)["success_pct"], _overall(cd)["success_pct"]
        rows.append({"model": model, "memory": kind, "student_memories_pct": a, "teacher_memories_pct": b,
                     "delta_cd_pct_points": round(b - a, 2), "delta_cd_relative_pct": _delta_pct(b, a)})
    return _write(pd.DataFrame(rows), csv_out, md_out,
                  "Table 9: context distillation, student vs teacher memories (valid_unseen success %)")


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
                "mean_steps_successful": s["mean_steps_successful"]})
    return _write(pd.DataFrame([row]), csv_out, md_out, "Table 6: teacher trajectory collection")


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
    return _write(pd.DataFrame(rows), csv_out, md_out, "Table 3: context overhead (tokens of the token_counter tokenizer)")

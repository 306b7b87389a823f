"""Our numbers side by side with the paper's (duomem/paper_numbers.json: every number that survives in
the paper's text), only where the configuration runs the paper's setting: same model name, test split,
step limit, k, adapter strategy. Nothing is matched by similarity: no match gives an empty table."""

import json
from importlib import resources
from pathlib import Path

import pandas as pd

from .io import read_jsonl
from .paired import episodes_path, mean_interval, overall
from .tables import write_table

PAPER_FILE = "paper_numbers.json"
# Table-1 columns as (adapter, memory): +LoRA and DuoMem use the adapter selected on dev.
TABLE1_COLUMNS = {"no_memory": ("base", "none"), "memp": ("base", "memp-self"), "memp_cd": ("base", "memp-cd"),
                  "lora": ("lora", "memp-self"), "duomem": ("lora", "memp-cd")}
COLUMNS = ["table", "model", "adapter", "memory", "metric", "paper", "ours", "ci95_low", "ci95_high",
           "difference", "paper_in_ci95", "n_tasks", "paper_says"]


def paper_numbers_path():
    return resources.files("duomem") / PAPER_FILE


def paper_entries(path=None):
    """Every stored paper number as a dict: table, model, adapter (base/lora), strategy (lora only),
    memories (short names such as memp-cd; several = the best of them), k, metric, value, quote."""
    data = json.loads((Path(path) if path else paper_numbers_path()).read_text())
    k = data["protocol"]["k"]
    entries = []
    for model, cols in data["table1"].items():
        for col, value in cols.items():
            adapter, memory = TABLE1_COLUMNS[col]
            entries.append({"table": "table1", "model": model, "adapter": adapter, "strategy": "full",
                            "memories": [memory], "k": k, "metric": "success_pct", "value": value,
                            "quote": f"table 1, {model}, column {col}: {value}"})
    for e in data["numbers"]:
        memories = e["memory"] if isinstance(e["memory"], list) else [e["memory"]]
        entries.append({**e, "memories": memories, "k": e.get("k", k), "strategy": e.get("strategy", "full")})
    for e in entries:
        e["max_steps"] = data["protocol"]["max_steps"]
    return entries


def memory_label(short, k):
    """`memp-cd` at k -> `memp-cd-k{k}`; none and trajectory take no k."""
    return short if short in ("none", "trajectory") else f"{short}-k{k}"


def matching_rows(entries, models, max_steps, adapter_label, summary_path, planned):
    """The entries this configuration can compare: the model is configured under the same name, the
    step limit is the paper's and the evaluation (test split, the entry's k and adapter strategy) is
    one the configuration runs anyway (`planned`: its summary paths). A row is
    (table, model, adapter, memory labels, metric, paper value, quote, summary paths)."""
    rows = []
    for e in entries:
        if e["model"] not in models or e["max_steps"] != max_steps:
            continue
        adapter = "base" if e["adapter"] == "base" else adapter_label(e["strategy"])
        labels = [memory_label(m, e["k"]) for m in e["memories"]]
        paths = [summary_path(e["model"], adapter, label) for label in labels]
        kept = [(label, p) for label, p in zip(labels, paths) if p in planned]
        if kept:
            rows.append((e["table"], e["model"], adapter, [label for label, _ in kept], e["metric"], e["value"],
                         e["quote"], [p for _, p in kept]))
    return rows


def _ours(metric, summaries):
    """(value, low, high, n, memory label index) of our evaluation; for several, the best success."""
    if metric == "success_pct":
        s = [overall(p) for p in summaries]
        best = max(range(len(s)), key=lambda i: s[i]["success_pct"])
        b = s[best]
        return float(b["success_pct"]), float(b["ci_low_pct"]), float(b["ci_high_pct"]), int(b["n"]), best
    key = {"mean_steps": "steps", "mean_seconds": "seconds"}[metric]
    values = [r[key] for r in read_jsonl(episodes_path(summaries[0]))]
    mean, low, high = mean_interval(values)
    return mean, low, high, len(values), 0


def paper_comparison(rows, config_models, csv_out, md_out, path=None):
    """One row per paper number this configuration reproduces: ours, its 95% interval (Wilson for
    success, Student t for means), the difference and whether the paper's number lies in the interval."""
    out = []
    for table, model, adapter, labels, metric, value, quote, summaries in rows:
        ours, low, high, n, i = _ours(metric, summaries)
        memory = labels[i] if len(labels) == 1 else f"best of {', '.join(labels)}: {labels[i]}"
        out.append({"table": table, "model": model, "adapter": adapter, "memory": memory, "metric": metric,
                    "paper": value, "ours": round(ours, 2), "ci95_low": round(low, 2), "ci95_high": round(high, 2),
                    "difference": round(ours - value, 2), "paper_in_ci95": bool(low <= value <= high),
                    "n_tasks": n, "paper_says": quote})
    paper_models = sorted({e["model"] for e in paper_entries(path)})
    note = ("Intervals: Wilson 95% for success rates, Student-t 95% for mean steps and seconds. Seconds depend "
            "on the hardware (the paper: 2x A100 80GB).")
    if not out:
        note = (f"No evaluation of this configuration matches a setting the paper reports. The paper's numbers are "
                f"for {', '.join(paper_models)} (test split, 30 steps, k = 10); this configuration evaluates "
                f"{', '.join(config_models)}.\n\n" + note)
    return write_table(pd.DataFrame(out, columns=COLUMNS), csv_out, md_out,
                       "Reproduced numbers next to the paper's", note, id_cols=("model",))

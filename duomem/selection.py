"""Adapter selection (paper §4, §5.4): every adapter of the grid is evaluated on the dev split under
MemP+CD; the best one is the single adapter used for every memory configuration on the test split.

Adapter labels, as they appear in evaluation paths:
  base                          no adapter
  {strategy}-r{rank}-lr{lr}     one adapter of the grid (dev evaluations, table 8)
  {strategy}-r{rank}-lr{lr}-n{N}  that adapter's training after its first N trajectories (the
                                learning curve, lora.curve; dev evaluations only)
  lora                          the adapter selected for the main input strategy
  lora-{strategy}               the adapter selected for another input strategy (table 5)
"""

import json
import re
from pathlib import Path

import pandas as pd

from .io import write_json_atomic
from .provenance import provenance

STRATEGY_RE = "full|latest|last5"
GRID_RE = rf"(?:{STRATEGY_RE})-r[1-9][0-9]*-lr[0-9.]+e[-+][0-9]+"
ADAPTER_RE = rf"base|lora|lora-(?:{STRATEGY_RE})|{GRID_RE}(?:-n[1-9][0-9]*)?"


def grid_label(strategy, rank, lr_text):
    return f"{strategy}-r{rank}-lr{lr_text}"


def curve_label(label, n):
    return f"{label}-n{n}"


def split_curve_label(label):
    """(grid label, N) of a learning-curve label; (label, None) for any other."""
    m = re.fullmatch(rf"({GRID_RE})-n([1-9][0-9]*)", label)
    return (m.group(1), int(m.group(2))) if m else (label, None)


def curve_adapter(folder, label):
    """The adapter folder an evaluation of `label` loads: a learning-curve point lives inside its grid
    adapter's folder (train_lora's `curve`)."""
    _, n = split_curve_label(label)
    return str(Path(folder) / "curve" / f"n{n}") if n else folder


def parse_grid_label(label):
    m = re.fullmatch(rf"({STRATEGY_RE})-r([1-9][0-9]*)-lr([0-9.]+e[-+][0-9]+)", label)
    if not m:
        raise ValueError(f"{label!r} is not a grid adapter label ({{strategy}}-r{{rank}}-lr{{lr}})")
    return m.group(1), int(m.group(2)), m.group(3)


def select_adapter(labels, adapter_dirs, summaries, out, *, model, strategy, split, memory):
    """Pick the grid adapter with the highest dev success (ties: fewer mean steps, then fewer invalid
    steps, then grid order); write `out` with every candidate's score, the choice, its folder and its
    size. Invalid steps break ties that small dev splits make common (0 % everywhere): an adapter
    that writes playable actions has learned more than one that does not."""
    if not labels or not (len(labels) == len(adapter_dirs) == len(summaries)):
        raise ValueError("adapter selection needs one adapter folder and one dev summary per grid label")
    candidates = []
    for order, (label, folder, summary) in enumerate(zip(labels, adapter_dirs, summaries)):
        s = pd.read_csv(summary).set_index("group").loc["all"]
        train = json.loads((Path(folder) / "train_summary.json").read_text())
        candidates.append({
            "label": label, "adapter": str(folder), "rank": train["rank"], "lr": train["lr"],
            "success_pct": float(s["success_pct"]), "ci_low_pct": float(s["ci_low_pct"]),
            "ci_high_pct": float(s["ci_high_pct"]), "n": int(s["n"]), "mean_steps": float(s["mean_steps"]),
            "mean_invalid_steps": float(s["mean_invalid_steps"]),
            "trainable_params": train["trainable_params"], "final_loss": train.get("final_loss"), "order": order,
        })
    best = min(candidates, key=lambda c: (-c["success_pct"], c["mean_steps"], c["mean_invalid_steps"], c["order"]))
    weights = Path(best["adapter"]) / "adapter_model.safetensors"
    record = provenance(
        model=model, strategy=strategy, selection_split=split, selection_memory=memory,
        rule="highest success; ties: fewer mean steps, then fewer invalid steps, then grid order",
        selected=best["label"], adapter=best["adapter"], trainable_params=best["trainable_params"],
        adapter_mb_on_disk=round(weights.stat().st_size / 1e6, 3) if weights.exists() else None,
        adapter_mb_bf16=round(best["trainable_params"] * 2 / 1e6, 3), candidates=candidates)
    write_json_atomic(out, record)
    return record


def selected_adapter(selected_json):
    """(adapter folder, label) recorded by `select_adapter`."""
    record = json.loads(Path(selected_json).read_text())
    return record["adapter"], record["selected"]

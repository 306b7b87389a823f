"""Adapter selection on the dev split: success first, then steps, then invalid steps, then grid order."""

import json

from duomem.selection import select_adapter
from duomem.stats import SUMMARY_COLUMNS


def _candidate(tmp_path, name, success_pct, mean_steps, invalid):
    folder = tmp_path / name
    folder.mkdir()
    (folder / "train_summary.json").write_text(json.dumps({"rank": 8, "lr": 1e-3, "trainable_params": 10}))
    summary = tmp_path / f"{name}.csv"
    row = ["all", 6, round(success_pct * 6 / 100), success_pct, 0.0, 39.03, mean_steps, 100.0, invalid, 36.0]
    summary.write_text(",".join(SUMMARY_COLUMNS) + "\n" + ",".join(map(str, row)) + "\n")
    return name, folder, summary


def _select(tmp_path, *candidates):
    tmp_path.mkdir(parents=True)
    labels, folders, summaries = zip(*(_candidate(tmp_path, *c) for c in candidates))
    out = tmp_path / "selected.json"
    return select_adapter(labels, folders, summaries, out, model="m", strategy="full", split="valid_seen",
                          memory="memp-cd-k3")["selected"]


def test_success_then_steps_then_invalid_steps_then_order(tmp_path):
    assert _select(tmp_path / "a", ("a", 0.0, 30, 5), ("b", 16.67, 30, 29)) == "b"  # success first
    assert _select(tmp_path / "b", ("a", 0.0, 30, 5), ("b", 0.0, 28, 29)) == "b"    # then steps
    # All at 0 % and 30 steps (the CPU default's dev split): the adapter writing playable actions.
    assert _select(tmp_path / "c", ("a", 0.0, 30, 29.7), ("b", 0.0, 30, 24.8)) == "b"
    assert _select(tmp_path / "d", ("a", 0.0, 30, 20), ("b", 0.0, 30, 20)) == "a"  # then grid order

"""Paired comparisons of two evaluations over the same tasks, from their per-episode records.

A Δ between two configurations is tested with the exact McNemar test (statsmodels) on the tasks both
evaluations played: only the discordant tasks (won by one, lost by the other) carry information.
"""

from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar

from .data import TASK_TYPES, DataError
from .io import read_jsonl

# Column-name abbreviations of the six ALFWorld task types (the paper's Pick, Look, Clean, Heat, Cool, Pick2).
TYPE_SHORT = dict(zip(TASK_TYPES, ("pick", "look", "clean", "heat", "cool", "pick2")))


def episodes_path(summary_path):
    """The per-episode records written beside an evaluation's summary.csv."""
    return Path(summary_path).with_name("episodes.jsonl")


def overall(summary_path):
    return pd.read_csv(summary_path).set_index("group").loc["all"]


def by_type(summary_path):
    """{short type: success %} for the task types the evaluation played."""
    rows = pd.read_csv(summary_path).set_index("group")
    return {short: float(rows.loc[t, "success_pct"]) for t, short in TYPE_SHORT.items() if t in rows.index}


def outcomes(summary_path):
    """{task_id: won} from the evaluation's episodes.jsonl."""
    return {r["task_id"]: bool(r["won"]) for r in read_jsonl(episodes_path(summary_path))}


def paired_test(base_summary, new_summary):
    """Exact McNemar test of `new` against `base` on their common tasks.

    Returns n_paired, lost (won by base only), gained (won by new only) and the two-sided p-value.
    """
    a, b = outcomes(base_summary), outcomes(new_summary)
    common = sorted(set(a) & set(b))
    if not common:
        raise DataError(f"no common tasks between {base_summary} and {new_summary}: a paired test needs the same tasks")
    both = sum(a[t] and b[t] for t in common)
    lost = sum(a[t] and not b[t] for t in common)
    gained = sum(b[t] and not a[t] for t in common)
    neither = len(common) - both - lost - gained
    result = mcnemar([[both, lost], [gained, neither]], exact=True)
    return {"n_paired": len(common), "lost": lost, "gained": gained, "p_value": round(float(result.pvalue), 4)}


def delta_columns(prefix, base_summary, new_summary):
    """Table columns for one Δ: points, relative %, the discordant counts and the McNemar p-value."""
    new, old = float(overall(new_summary)["success_pct"]), float(overall(base_summary)["success_pct"])
    test = paired_test(base_summary, new_summary)
    return {f"{prefix}_pts": round(new - old, 2),
            f"{prefix}_rel_pct": round(100 * (new - old) / old, 1) if old else float("nan"),
            f"{prefix}_gained": test["gained"], f"{prefix}_lost": test["lost"],
            f"{prefix}_p_mcnemar": test["p_value"]}


def mean_interval(values, confidence=0.95):
    """(mean, low, high): a Student-t interval for a mean (steps or seconds per task)."""
    x = np.asarray(values, dtype=float)
    m = float(x.mean())
    if len(x) < 2 or float(x.std(ddof=1)) == 0.0:
        return m, m, m
    low, high = stats.t.interval(confidence, len(x) - 1, loc=m, scale=stats.sem(x))
    return m, float(low), float(high)

"""Success rates with 95% Wilson intervals, overall and per task type."""

from statistics import mean

from statsmodels.stats.proportion import proportion_confint

from .data import TASK_TYPES

SUMMARY_COLUMNS = ["group", "n", "successes", "success_pct", "ci_low_pct", "ci_high_pct",
                   "mean_steps", "mean_seconds", "mean_invalid_steps", "tasks_per_hour"]


def wilson(successes, n, alpha=0.05):
    """(low, high) in percent; (nan, nan) for n == 0."""
    if n == 0:
        return float("nan"), float("nan")
    low, high = proportion_confint(successes, n, alpha=alpha, method="wilson")
    return 100 * low, 100 * high


def summary_row(group, records):
    n = len(records)
    wins = sum(bool(r["won"]) for r in records)
    low, high = wilson(wins, n)
    avg = (lambda k: round(mean(r[k] for r in records), 3)) if n else (lambda k: float("nan"))
    return {"group": group, "n": n, "successes": wins,
            "success_pct": round(100 * wins / n, 2) if n else float("nan"),
            "ci_low_pct": round(low, 2), "ci_high_pct": round(high, 2),
            "mean_steps": avg("steps"), "mean_seconds": avg("seconds"),
            "mean_invalid_steps": avg("invalid_steps"), "tasks_per_hour": tasks_per_hour(records)}


def tasks_per_hour(records):
    """Throughput: tasks finished per hour of the span from the first episode's reset to the last
    episode's end (episodes overlap, so this is not 3600 / mean seconds); NaN without timestamps
    (records written before they were kept). A resumed run's pause counts in the span."""
    if not records or any("started_at" not in r for r in records):
        return float("nan")
    span = max(r["ended_at"] for r in records) - min(r["started_at"] for r in records)
    return round(3600 * len(records) / span, 2) if span > 0 else float("nan")


def summarise(records):
    """One row for all episodes, then one per task type present."""
    rows = [summary_row("all", records)]
    for t in TASK_TYPES:
        of_type = [r for r in records if r["task_type"] == t]
        if of_type:
            rows.append(summary_row(t, of_type))
    return rows

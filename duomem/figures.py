"""Figures (matplotlib, Agg): figure 3 (success vs k), success by task type, steps and seconds per
configuration, the LoRA grid heat map and the training loss curves. Each is drawn from a results file
(a table CSV, figure 3's data CSV, the adapters' trainer_log.json) and saved as PNG and PDF."""

import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on a cluster node or in CI

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from .io import atomic_path  # noqa: E402
from .paired import TYPE_SHORT  # noqa: E402


def save(fig, png_out, pdf_out):
    """Write both formats atomically; the PDF without a creation date, so reruns give the same file."""
    for path, fmt, meta in ((png_out, "png", {}), (pdf_out, "pdf", {"CreationDate": None})):
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=150, bbox_inches="tight", metadata=meta)
    plt.close(fig)


def _panels(n, width=4.8, height=3.6, cols=3):
    cols = min(cols, max(n, 1))
    rows = math.ceil(max(n, 1) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False, layout="constrained")
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat)


def figure3(data_csv, png_out, pdf_out):
    """Success (%) vs k for Script and MemP with CD, one panel per model, Wilson 95% bands."""
    df = pd.read_csv(data_csv)
    models = list(dict.fromkeys(df["model"]))
    fig, axes = _panels(len(models))
    for ax, model in zip(axes, models):
        for kind, style in (("script", "o-"), ("memp", "s-")):
            d = df[(df["model"] == model) & (df["memory"] == kind)].sort_values("k")
            if d.empty:
                continue
            line, = ax.plot(d["k"], d["success_pct"], style, label={"script": "Script + CD", "memp": "MemP + CD"}[kind])
            ax.fill_between(d["k"], d["ci_low_pct"], d["ci_high_pct"], color=line.get_color(), alpha=0.15)
        ax.set(title=model, xlabel="retrieved memories k", ylabel="success (%)", ylim=(0, 100))
        ax.set_xticks(sorted(set(df["k"])))
        ax.legend()
    fig.suptitle("Figure 3: success vs k (valid_unseen, 95% Wilson bands)")
    save(fig, png_out, pdf_out)


def success_by_type(table7_csv, png_out, pdf_out):
    """Grouped bars: success per task type (and overall) for each memory configuration, one panel per model."""
    df = pd.read_csv(table7_csv)
    groups = ["all"] + list(TYPE_SHORT.values())
    models = list(dict.fromkeys(df["model"]))
    fig, axes = _panels(len(models), width=6.4)
    x = np.arange(len(groups))
    for ax, model in zip(axes, models):
        d = df[df["model"] == model]
        width = 0.8 / max(len(d), 1)
        for j, (_, row) in enumerate(d.iterrows()):
            values = [row["success_pct"]] + [row.get(f"{t}_pct", np.nan) for t in TYPE_SHORT.values()]
            ax.bar(x + (j - (len(d) - 1) / 2) * width, values, width, label=row["memory"])
        ax.set_xticks(x, groups, rotation=30, ha="right")
        ax.set(title=model, ylabel="success (%)", ylim=(0, 100))
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.suptitle("Success by task type per memory configuration (valid_unseen, no LoRA)")
    save(fig, png_out, pdf_out)


def efficiency(table2_csv, png_out, pdf_out):
    """Table 2 as a picture: mean steps and mean seconds per task for each configuration and model."""
    df = pd.read_csv(table2_csv)
    configs = [c[: -len("_mean_steps")] for c in df.columns if c.endswith("_mean_steps")]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4), squeeze=False, layout="constrained")
    colors = {c: f"C{j}" for j, c in enumerate(configs)}
    width = 0.8 / max(len(configs), 1)
    for ax, metric, label in ((axes[0][0], "mean_steps", "mean steps per task"),
                              (axes[0][1], "mean_seconds", "mean seconds per task")):
        for i, (_, row) in enumerate(df.iterrows()):  # each model's bars centred on its tick
            present = [c for c in configs if pd.notna(row[f"{c}_{metric}"])]
            for j, c in enumerate(present):
                ax.bar(i + (j - (len(present) - 1) / 2) * width, row[f"{c}_{metric}"], width, color=colors[c],
                       label=c if i == 0 or c not in ax.get_legend_handles_labels()[1] else None)
        ax.set_xticks(range(len(df)), df["model"], rotation=20, ha="right")
        ax.set_ylabel(label)
    axes[0][1].legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.suptitle("Table 2: steps and seconds per task (valid_unseen)")
    save(fig, png_out, pdf_out)


def lora_grid(table8_csv, png_out, pdf_out):
    """Heat map of dev success over rank x learning rate, one panel per model; the chosen cell is boxed."""
    df = pd.read_csv(table8_csv)
    keys = list(dict.fromkeys(zip(df["model"], df["strategy"])))
    fig, axes = _panels(len(keys))
    for ax, (model, strategy) in zip(axes, keys):
        d = df[(df["model"] == model) & (df["strategy"] == strategy)]
        ranks = sorted(set(d["rank"]))
        lrs = sorted(set(d["lr"]), key=float)
        grid = np.full((len(ranks), len(lrs)), np.nan)
        for _, row in d.iterrows():
            i, j = ranks.index(row["rank"]), lrs.index(row["lr"])
            grid[i, j] = row["dev_success_pct"]
            ax.text(j, i, f"{row['dev_success_pct']:.1f}", ha="center", va="center", color="black")
            if str(row["selected"]) == "True":
                ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2))
        im = ax.imshow(grid, cmap="viridis", vmin=0, vmax=100, origin="lower")
        ax.set_xticks(range(len(lrs)), [str(lr) for lr in lrs])
        ax.set_yticks(range(len(ranks)), [str(r) for r in ranks])
        ax.set(title=f"{model} ({strategy})", xlabel="learning rate", ylabel="rank")
        fig.colorbar(im, ax=ax, label="dev success (%)")
    fig.suptitle("Table 8: LoRA grid on valid_seen under MemP+CD (red box: selected)")
    save(fig, png_out, pdf_out)


def loss_curves(runs, png_out, pdf_out):
    """Training loss per optimiser step. `runs` is [(model, grid label, adapter folder)]."""
    models = list(dict.fromkeys(m for m, _, _ in runs))
    fig, axes = _panels(len(models))
    for ax, model in zip(axes, models):
        for m, label, folder in runs:
            if m != model:
                continue
            curve = json.loads((Path(folder) / "trainer_log.json").read_text())["loss_curve"]
            ax.plot([p["step"] for p in curve], [p["loss"] for p in curve], marker=".", label=label)
        ax.set(title=model, xlabel="optimiser step", ylabel="training loss")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize="small")
    fig.suptitle("LoRA training loss")
    save(fig, png_out, pdf_out)


def figure3_from_summaries(rows, csv_out, png_out, pdf_out):
    """Figure 3 from its evaluations: [(model, kind, k, summary)] -> the data CSV, then the plot."""
    from .model_tables import k_ablation

    k_ablation(rows, csv_out)
    figure3(csv_out, png_out, pdf_out)


def learning_curve(data_csv, png_out, pdf_out):
    """Dev success (%) vs training trajectories, one line per grid adapter, one panel per (model,
    memory configuration), Wilson 95% bands; mean invalid steps on a second axis (learning the action
    format shows there first)."""
    df = pd.read_csv(data_csv)
    panels = list(dict.fromkeys(zip(df["model"], df["memory"])))
    fig, axes = _panels(len(panels), width=5.6, cols=2)
    for ax, (model, memory) in zip(axes, panels):
        twin, here = ax.twinx(), df[(df["model"] == model) & (df["memory"] == memory)]
        for label in dict.fromkeys(here["adapter"]):
            d = here[here["adapter"] == label].sort_values("trajectories")
            line, = ax.plot(d["trajectories"], d["success_pct"], "o-", label=f"{label}: success")
            ax.fill_between(d["trajectories"], d["ci_low_pct"], d["ci_high_pct"], color=line.get_color(), alpha=0.15)
            twin.plot(d["trajectories"], d["mean_invalid_steps"], "x--", color=line.get_color(), alpha=0.6,
                      label=f"{label}: invalid steps")
        ax.set(title=f"{model}, memory: {memory}", xlabel="training trajectories (0: the base model)",
               ylabel="dev success (%)", ylim=(0, 100))
        ax.set_xticks(sorted(set(here["trajectories"])), [str(n) for n in sorted(set(here["trajectories"]))])
        twin.set(ylabel="mean invalid steps", ylim=(0, None))
        lines = ax.get_legend_handles_labels()
        more = twin.get_legend_handles_labels()
        ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize="small", loc="upper left")
    fig.suptitle("Learning curve: dev success vs training trajectories (95% Wilson bands)")
    save(fig, png_out, pdf_out)


def learning_curve_from_summaries(rows, csv_out, png_out, pdf_out):
    """The learning curve from its dev evaluations: the data CSV, then the plot."""
    from .model_tables import learning_curve as curve_data

    curve_data(rows, csv_out)
    learning_curve(csv_out, png_out, pdf_out)

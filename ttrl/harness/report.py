"""What a person reads: the results table (terminal and Markdown) and the report's PNG plots."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from .correlation import plot_accuracy_by_correlation

#: (key, column title, which way is better: +1 higher, -1 lower, 0 not a quality measure)
COLUMNS = (
    ("label_accuracy", "label acc", 1),
    ("reward_accuracy", "reward acc", 1),
    ("pairwise_accuracy", "pairwise acc", 1),
    ("majority_ratio", "majority ratio", 0),
    ("ground_truth_ratio", "gt ratio", 0),
    ("pass_at_n", "pass@N", 0),
    ("seconds", "seconds", -1),
    ("rollouts_per_second", "rollouts/s", 1),
)
DIFFICULTY_BUCKETS = ((0.0, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1.0))


def best_values(entries: list[dict[str, Any]]) -> dict[str, float]:
    """The best value of each quality metric over the estimators that have it."""
    best = {}
    for key, _, direction in COLUMNS:
        values = [e["metrics"][key] for e in entries if e["metrics"].get(key) is not None]
        if direction and values:
            best[key] = max(values) if direction > 0 else min(values)
    return best


def format_value(key: str, value: float | None) -> str:
    if value is None:
        return "—"
    if key == "seconds":
        return f"{value:.3f}"
    if key == "rollouts_per_second":
        return f"{value:,.0f}"
    return f"{value:.3f}"


def status_of(entry: dict[str, Any]) -> str:
    if entry.get("skipped"):
        return "skipped"
    if entry.get("failed_groups"):
        return f"failed on {entry['failed_groups']} group(s)"
    return "ok"


def rows(results: dict[str, Any]):
    """(label, [(text, is_best)], status) per estimator, in the order they were given."""
    entries = results["estimators"]
    best = best_values(entries)
    for entry in entries:
        cells = []
        for key, _, _ in COLUMNS:
            value = entry["metrics"].get(key)
            is_best = value is not None and key in best and math.isclose(value, best[key], rel_tol=1e-12, abs_tol=1e-12)
            cells.append((format_value(key, value), is_best))
        yield entry.get("label") or entry["name"], cells, status_of(entry)


def rich_table(results: dict[str, Any]):
    from rich.table import Table

    data = results["data"]
    table = Table(title=f"ttrl bench: {data['groups']} groups, {data['rollouts']} rollouts ({data['path']})",
                  caption="bold green = best per metric; — = does not apply")
    table.add_column("estimator", style="bold")
    for _, title, _ in COLUMNS:
        table.add_column(title, justify="right")
    table.add_column("status")
    for label, cells, status in rows(results):
        table.add_row(label, *[f"[bold green]{t}[/]" if best else t for t, best in cells], status)
    return table


def markdown_table(results: dict[str, Any]) -> str:
    head = "| estimator | " + " | ".join(title for _, title, _ in COLUMNS) + " | status |"
    rule = "|---|" + "---:|" * len(COLUMNS) + "---|"
    lines = [head, rule]
    for label, cells, status in rows(results):
        lines.append(f"| {label} | " + " | ".join(f"**{t}**" if best else t for t, best in cells) + f" | {status} |")
    return "\n".join(lines)


# -- plots -------------------------------------------------------------------------------------------

def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_reward_distributions(details: dict[str, dict], path: Path) -> Path | None:
    """Histogram of estimated rewards for correct vs incorrect rollouts, one panel per estimator."""
    labels = [k for k, v in details.items() if "rewards" in v]
    if not labels:
        return None
    plt = _pyplot()
    cols = min(3, len(labels))
    nrows = math.ceil(len(labels) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 3.2 * nrows), squeeze=False)
    for ax, label in zip(axes.flat, labels):
        correct = np.asarray(details[label]["rewards"]["correct"], dtype=float)
        incorrect = np.asarray(details[label]["rewards"]["incorrect"], dtype=float)
        both = np.concatenate([correct, incorrect]) if correct.size + incorrect.size else np.zeros(1)
        lo, hi = float(both.min()), float(both.max())
        if hi - lo < 1e-9:
            lo, hi = lo - 0.5, hi + 0.5
        bins = np.linspace(lo - 0.02 * (hi - lo), hi + 0.02 * (hi - lo), 31)
        ax.hist(correct, bins=bins, alpha=0.6, color="tab:green", label=f"correct (n={correct.size})", density=True)
        ax.hist(incorrect, bins=bins, alpha=0.6, color="tab:red", label=f"incorrect (n={incorrect.size})", density=True)
        ax.set_title(label)
        ax.set_xlabel("estimated reward")
        ax.set_ylabel("density")
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(labels):]:
        ax.axis("off")
    fig.suptitle("Rewards of correct vs incorrect rollouts")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_label_accuracy_vs_majority(details: dict[str, dict], path: Path, bins: int = 8) -> Path | None:
    """Per estimator with labels: label accuracy of groups binned by the label's majority ratio."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    edges = np.linspace(0.0, 1.0, bins + 1)
    drawn = False
    for i, (label, detail) in enumerate(details.items()):
        scores = detail["scores"]
        pairs = [(m, a) for m, a in zip(scores["majority_ratio"], scores["label_accuracy"]) if m is not None and a is not None]
        if not pairs:
            continue
        ratio, acc = (np.asarray(v, dtype=float) for v in zip(*pairs))
        which = np.clip(np.digitize(ratio, edges[1:-1], right=True), 0, bins - 1)
        xs, ys, ns = [], [], []
        for b in range(bins):
            mask = which == b
            if mask.any():
                xs.append((edges[b] + edges[b + 1]) / 2)
                ys.append(float(acc[mask].mean()))
                ns.append(int(mask.sum()))
        ax.plot(xs, ys, marker="o", label=label, color=f"C{i}")  # one colour per estimator in every plot
        for x, y, n in zip(xs, ys, ns):
            # stagger the counts of different estimators so that coinciding points stay readable
            ax.annotate(str(n), (x, y), textcoords="offset points", xytext=(0, 5 + 8 * (i % 3)), fontsize=7,
                        ha="center", color=f"C{i}")
        drawn = True
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.05, 1.1)
    ax.set_xlabel("majority ratio (label's answer class / N)")
    ax.set_ylabel("label accuracy")
    ax.set_title("Label accuracy against majority ratio (numbers: groups per bin)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def pairwise_by_bucket(scores: dict[str, list]) -> list[tuple[float | None, int]]:
    """Pooled pairwise accuracy and group count per ground-truth-ratio bucket (groups with pairs only)."""
    out = []
    for lo, hi in DIFFICULTY_BUCKETS:
        wins = count = groups = 0
        for gt, w, c in zip(scores["ground_truth_ratio"], scores["pair_wins"], scores["pair_count"]):
            if c and (lo < gt <= hi):
                wins, count, groups = wins + w, count + c, groups + 1
        out.append((wins / count if count else None, groups))
    return out


def plot_pairwise_by_difficulty(details: dict[str, dict], path: Path) -> Path | None:
    """Grouped bars: pairwise accuracy in each ground-truth-ratio (difficulty) bucket, per estimator."""
    if not details:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 4.2))
    labels = list(details)
    width = 0.8 / len(labels)
    x = np.arange(len(DIFFICULTY_BUCKETS))
    groups_per_bucket = None
    for i, label in enumerate(labels):
        buckets = pairwise_by_bucket(details[label]["scores"])
        groups_per_bucket = [g for _, g in buckets]
        heights = [v if v is not None else 0.0 for v, _ in buckets]
        ax.bar(x + (i - (len(labels) - 1) / 2) * width, heights, width, label=label, color=f"C{i}")
    ax.axhline(0.5, color="grey", linestyle="--", linewidth=1, label="chance (0.5)")
    ax.set_xticks(x, [f"({lo:.2f}, {hi:.2f}]\n{n} groups" for (lo, hi), n in zip(DIFFICULTY_BUCKETS, groups_per_bucket)])
    ax.set_xlabel("ground-truth ratio of the group (fraction of correct rollouts; low = hard)")
    ax.set_ylabel("pairwise accuracy")
    ax.set_ylim(0, 1.05)
    ax.set_title("Pairwise accuracy by difficulty")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_sweep(sweep: dict[str, Any], path: Path) -> Path:
    """Label and pairwise accuracy of each estimator against the swept simulation knob."""
    plt = _pyplot()
    knob, values = sweep["sweep"]["knob"], sweep["sweep"]["values"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    labels = [e.get("label") or e["name"] for e in sweep["runs"][0]["results"]["estimators"]]
    for metric, ax in zip(("label_accuracy", "pairwise_accuracy"), axes):
        for i, label in enumerate(labels):
            ys = [run["results"]["estimators"][i]["metrics"][metric] for run in sweep["runs"]]
            if all(y is None for y in ys):
                continue
            ax.plot(values, [np.nan if y is None else y for y in ys], marker="o", label=label, color=f"C{i}")
        ax.set_xlabel(knob)
        ax.set_ylabel(metric.replace("_", " "))
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_title(f"Label accuracy vs {knob}")
    axes[1].set_title(f"Pairwise accuracy vs {knob}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(results: dict[str, Any], details: dict[str, dict], directory: Path) -> Path:
    """``report.md`` with the table and the three plots, in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    plots = [
        ("Rewards of correct vs incorrect rollouts", plot_reward_distributions(details, directory / "rewards_by_correctness.png")),
        ("Label accuracy against majority ratio", plot_label_accuracy_vs_majority(details, directory / "label_accuracy_vs_majority_ratio.png")),
        ("Pairwise accuracy by difficulty (ground-truth ratio)", plot_pairwise_by_difficulty(details, directory / "pairwise_by_difficulty.png")),
        ("Accuracy by rollout correlation", plot_accuracy_by_correlation(details, directory / "accuracy_by_correlation.png")),
    ]
    data = results["data"]
    lines = ["# ttrl bench report", "", f"Data: `{data['path']}`: {data['groups']} groups, {data['rollouts']} rollouts."]
    if data.get("rollout_correlation") is not None:
        lines[-1] += f" Rollout correlation (mean pairwise token overlap): {data['rollout_correlation']:.3f}."
    note = results.get("harness", {}).get("data_note")
    if note:
        lines += ["", f"> {note}"]
    lines += ["", markdown_table(results), "", "Bold: best value per metric. — : the metric does not apply.", ""]
    for entry in results["estimators"]:
        if entry.get("skipped"):
            lines.append(f"- **{entry.get('label') or entry['name']}** {entry['skipped']}")
        for err in entry.get("errors", []):
            lines.append(f"- **{entry.get('label') or entry['name']}** failed on group `{err['group']}`: {err['error']}")
    for title, plot in plots:
        if plot is not None:
            lines += ["", f"## {title}", "", f"![{title}]({plot.name})"]
    path = directory / "report.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_sweep_report(sweep: dict[str, Any], directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    knob, values = sweep["sweep"]["knob"], sweep["sweep"]["values"]
    plot = plot_sweep(sweep, directory / f"sweep_{knob}.png")
    lines = ["# ttrl bench sweep", "", f"Simulation knob `{knob}` over {values}.", "",
             f"| estimator | metric | " + " | ".join(f"{v:g}" for v in values) + " |",
             "|---|---|" + "---:|" * len(values)]
    for i, entry in enumerate(sweep["runs"][0]["results"]["estimators"]):
        for metric in ("label_accuracy", "pairwise_accuracy"):
            cells = [format_value(metric, run["results"]["estimators"][i]["metrics"][metric]) for run in sweep["runs"]]
            lines.append(f"| {entry.get('label') or entry['name']} | {metric} | " + " | ".join(cells) + " |")
    lines += ["", f"![sweep]({plot.name})"]
    path = directory / "report.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path

"""What a person reads: the results table (terminal and Markdown) and the report's PNG plots.

Names are never cut: the estimator column takes its longest name, and when a terminal is too narrow
for one table the metrics are stacked into two (quality, then cost). Each estimator has one colour
in every report and sweep (:func:`colour_of`), each plot says which groups it leaves out, and no
absolute path of the user's machine is written (:func:`display_path`).
"""

from __future__ import annotations

import math
import os
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from ttrl.core.rollout_files import atomic_write

#: (key, column title, which way is better: +1 higher, -1 lower, 0 not a quality measure)
QUALITY_COLUMNS = (
    ("label_accuracy", "label acc", 1),
    ("reward_accuracy", "reward acc", 1),
    ("pairwise_accuracy", "pairwise acc", 1),
    ("majority_ratio", "majority ratio", 0),
    ("ground_truth_ratio", "gt ratio", 0),
    ("pass_at_n", "pass@N", 0),
)
COST_COLUMNS = (
    ("seconds", "estimator s", -1),
    ("with_answers_seconds", "+answers s", -1),
    ("rollouts_per_second", "rollouts/s", 1),
)
COLUMNS = QUALITY_COLUMNS + COST_COLUMNS
DIFFICULTY_BUCKETS = ((0.0, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1.0))
DOCS_URL = "https://github.com/ttrl-project/ttrl/blob/main/docs"
#: One line per metric, for report.md (the full definitions: docs/formats.md).
METRIC_LINES = (
    ("label acc", "1 if the estimated label is equivalent to the reference, averaged over groups (— without a label)"),
    ("reward acc", "fraction of rollouts whose 0/1 reward equals their correctness (— unless every reward is 0 or 1)"),
    ("pairwise acc", "over (correct, incorrect) rollout pairs of a group, how often the correct one gets the higher reward (ties 1/2), pooled"),
    ("majority ratio", "size of the label's answer class / N"),
    ("gt ratio", "fraction of correct rollouts (avg@N); the same for every estimator"),
    ("pass@N", "1 if any rollout of the group is correct"),
    ("estimator s", "wall time of the estimator (and reward shapers) over the whole set"),
    ("+answers s", "estimator s plus the shared answer extraction, clustering and grading, for estimators that need answers: what a training step pays"),
    ("rollouts/s", "rollouts / estimator s"),
)

#: Fixed colours of the built-in estimators (matplotlib's tab10); other names hash into tab20.
_FIXED_COLOURS = {
    "majority_vote": "#1f77b4", "dare": "#ff7f0e", "entropy": "#2ca02c", "self_certainty": "#d62728",
    "empo": "#9467bd", "confidence_vote": "#8c564b", "srt": "#e377c2",
}
_TAB20 = ("#1f77b4", "#aec7e8", "#ff7f0e", "#ffbb78", "#2ca02c", "#98df8a", "#d62728", "#ff9896", "#9467bd",
          "#c5b0d5", "#8c564b", "#c49c94", "#e377c2", "#f7b6d2", "#7f7f7f", "#c7c7c7", "#bcbd22", "#dbdb8d",
          "#17becf", "#9edae5")
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">")
_LINESTYLES = ("-", "--", "-.", ":")


def colour_of(label: str) -> str:
    """The colour of an estimator (or config label) in every plot: fixed for built-ins, else a stable
    hash of the name, so it does not depend on which other estimators a report holds."""
    return _FIXED_COLOURS.get(label) or _TAB20[zlib.crc32(label.encode("utf-8")) % len(_TAB20)]


def style_of(label: str, index: int) -> dict[str, Any]:
    """Colour plus a marker and line style per position, so overlapping lines stay visible."""
    return {"color": colour_of(label), "marker": _MARKERS[index % len(_MARKERS)],
            "linestyle": _LINESTYLES[index % len(_LINESTYLES)], "alpha": 0.85}


def display_path(path: str) -> str:
    """A data path as shown in tables and reports, never an absolute path of the user's machine:
    a file shipped with ttrl as ``ttrl/...`` (wherever ttrl is installed), a file under the working
    directory relative to it, any other file by its name."""
    if not path or path.startswith("simulation:") or not os.path.isabs(path):
        return path
    try:
        resolved = Path(path).resolve()
        package = Path(__file__).resolve().parents[1]
        if resolved.is_relative_to(package):
            return str(Path("ttrl") / resolved.relative_to(package))
        return os.path.relpath(path) if resolved.is_relative_to(Path.cwd().resolve()) else Path(path).name
    except (OSError, ValueError):
        return Path(path).name


def with_cost(results: dict[str, Any], needs_answers: set[str] | frozenset[str] = frozenset()) -> list[dict[str, Any]]:
    """The estimator entries with ``with_answers_seconds``: estimator seconds plus the shared answer
    clustering for those that need answers."""
    shared = (results.get("harness") or {}).get("answer_classes_seconds") or 0.0
    entries = []
    for entry in results["estimators"]:
        metrics = dict(entry["metrics"])
        label = entry.get("label") or entry["name"]
        if metrics.get("seconds") is not None:
            metrics["with_answers_seconds"] = metrics["seconds"] + (shared if label in needs_answers else 0.0)
        entries.append({**entry, "metrics": metrics})
    return entries


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
    if key.endswith("seconds"):
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


def rows(results: dict[str, Any], columns=COLUMNS, needs_answers=frozenset()):
    """(label, [(text, is_best)], status) per estimator, in the order they were given."""
    entries = with_cost(results, needs_answers)
    best = best_values(entries)
    for entry in entries:
        cells = []
        for key, _, _ in columns:
            value = entry["metrics"].get(key)
            is_best = value is not None and key in best and math.isclose(value, best[key], rel_tol=1e-12, abs_tol=1e-12)
            cells.append((format_value(key, value), is_best))
        yield entry.get("label") or entry["name"], cells, status_of(entry)


def _title(results: dict[str, Any]) -> str:
    data = results["data"]
    return f"ttrl bench: {data['groups']} groups, {data['rollouts']} rollouts ({display_path(data['path'])})"


def _rich_part(results, columns, needs_answers, title, caption, status: bool):
    """A rich table whose columns are never narrower than their widest cell (so nothing is cut)."""
    from rich.table import Table

    body = list(rows(results, columns, needs_answers))
    table = Table(title=title, caption=caption, title_justify="left", caption_justify="left")
    table.add_column("estimator", style="bold", no_wrap=True,
                     min_width=max([len("estimator"), *(len(label) for label, _, _ in body)]))
    for i, (_, title_text, _) in enumerate(columns):
        header = title_text.replace(" ", "\n", 1)
        widest = max([*(len(part) for part in header.split("\n")), *(len(cells[i][0]) for _, cells, _ in body)])
        table.add_column(header, justify="right", no_wrap=True, min_width=widest)
    if status:
        table.add_column("status", overflow="fold", min_width=6)
    for label, cells, state in body:
        row = [label, *[f"[bold green]{t}[/]" if best else t for t, best in cells]]
        table.add_row(*row, *([state] if status else []))
    return table


def _needed_width(table) -> int:
    """Width of ``table`` with every column at its minimum: borders, padding and cells."""
    return 1 + sum((column.min_width or 0) + 3 for column in table.columns)


def rich_table(results: dict[str, Any], needs_answers=frozenset(), width: int | None = None):
    """One table, or (narrower than it needs) a quality table stacked over a cost table; names whole."""
    from rich.console import Group

    caption = ("bold green = best per metric; — = does not apply; +answers s = estimator s plus the shared "
               "answer extraction and clustering, for estimators that need answers")
    whole = _rich_part(results, COLUMNS, needs_answers, _title(results), caption, True)
    if width is None or _needed_width(whole) <= width:
        return whole
    return Group(_rich_part(results, QUALITY_COLUMNS, needs_answers, _title(results), None, False),
                 _rich_part(results, COST_COLUMNS, needs_answers, None, caption, True))


def sweep_tables(sweep: dict[str, Any], title: str, width: int, metrics=("label_accuracy", "pairwise_accuracy")):
    """A sweep's table per metric (estimators by knob value), the values split over several tables
    when they do not fit ``width``; estimator names are never cut."""
    from rich.console import Group
    from rich.table import Table

    values = sweep["sweep"]["values"]
    entries = sweep["runs"][0]["results"]["estimators"]
    labels = [e.get("label") or e["name"] for e in entries]
    name_width = max([len("estimator"), *map(len, labels)])
    per_table = max(1, (width - name_width - 4) // 8)  # a value column: 5 characters and its borders
    parts = []
    for metric in metrics:
        for start in range(0, len(values), per_table):
            chunk = list(range(start, min(start + per_table, len(values))))
            table = Table(title=f"{title}: {metric}" if start == 0 else None, title_justify="left")
            table.add_column("estimator", no_wrap=True, min_width=name_width)
            for j in chunk:
                table.add_column(f"{values[j]:g}", justify="right", no_wrap=True, min_width=5)
            for i, label in enumerate(labels):
                table.add_row(label, *[format_value(metric, sweep["runs"][j]["results"]["estimators"][i]["metrics"][metric])
                                       for j in chunk])
            parts.append(table)
    return Group(*parts)


def markdown_table(results: dict[str, Any], needs_answers=frozenset()) -> str:
    head = "| estimator | " + " | ".join(title for _, title, _ in COLUMNS) + " | status |"
    rule = "|---|" + "---:|" * len(COLUMNS) + "---|"
    lines = [head, rule]
    for label, cells, status in rows(results, COLUMNS, needs_answers):
        lines.append(f"| {label} | " + " | ".join(f"**{t}**" if best else t for t, best in cells) + f" | {status} |")
    return "\n".join(lines)


# -- plots -------------------------------------------------------------------------------------------

def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path, left_out: str | None) -> None:
    """Save a figure atomically, with what it leaves out written under it."""
    if left_out:
        fig.text(0.01, 0.005, f"Left out: {left_out}", fontsize=7, ha="left", va="bottom", wrap=True)
        fig.tight_layout(rect=(0, 0.05, 1, 1))
    else:
        fig.tight_layout()
    with atomic_write(path, "wb") as handle:
        fig.savefig(handle, dpi=110, format="png")


def left_out_of_plots(details: dict[str, dict], groups: int) -> dict[str, str]:
    """Per plot, the groups it leaves out, in words (the same text under the plot and in report.md)."""
    if not details:
        return {}
    scores = next(iter(details.values()))["scores"]
    graded = len(scores["ground_truth_ratio"])
    no_reference = groups - graded
    none_correct = sum(1 for g in scores["ground_truth_ratio"] if g == 0)
    all_correct = sum(1 for g in scores["ground_truth_ratio"] if g == 1)
    ref = f"{no_reference} group(s) without a reference" if no_reference else ""
    no_label = {label: sum(1 for m, a in zip(d["scores"]["majority_ratio"], d["scores"]["label_accuracy"])
                           if m is None or a is None) for label, d in details.items()}
    label_part = "; ".join(f"{k}: {v} group(s) without a label" for k, v in no_label.items() if 0 < v < graded)
    return {
        "rewards": ref,
        "label": "; ".join(x for x in (ref, label_part) if x),
        "pairwise": "; ".join(x for x in (
            ref, f"{none_correct} group(s) with no correct rollout" if none_correct else "",
            f"{all_correct} group(s) with every rollout correct" if all_correct else "") if x),
    }


def plot_reward_distributions(details: dict[str, dict], path: Path, left_out: str | None = None) -> Path | None:
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
        ax.set_title(label, color=colour_of(label))
        ax.set_xlabel("estimated reward")
        ax.set_ylabel("density")
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(labels):]:
        ax.axis("off")
    fig.suptitle("Rewards of correct vs incorrect rollouts")
    _save(fig, path, left_out)
    plt.close(fig)
    return path


def plot_label_accuracy_vs_majority(details: dict[str, dict], path: Path, bins: int = 8,
                                    left_out: str | None = None) -> Path | None:
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
        ax.plot(xs, ys, label=label, **style_of(label, i))  # one colour per estimator in every plot
        for x, y, n in zip(xs, ys, ns):
            # stagger the counts of different estimators so that coinciding points stay readable
            ax.annotate(str(n), (x, y), textcoords="offset points", xytext=(0, 5 + 8 * (i % 3)), fontsize=7,
                        ha="center", color=colour_of(label))
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
    _save(fig, path, left_out)
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


def plot_pairwise_by_difficulty(details: dict[str, dict], path: Path, left_out: str | None = None) -> Path | None:
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
        ax.bar(x + (i - (len(labels) - 1) / 2) * width, heights, width, label=label, color=colour_of(label),
               hatch=("", "//", "..", "xx")[i % 4], edgecolor="white")
    ax.axhline(0.5, color="grey", linestyle="--", linewidth=1, label="chance (0.5)")
    ax.set_xticks(x, [f"({lo:.2f}, {hi:.2f}]\n{n} groups" for (lo, hi), n in zip(DIFFICULTY_BUCKETS, groups_per_bucket)])
    ax.set_xlabel("ground-truth ratio of the group (fraction of correct rollouts; low = hard)")
    ax.set_ylabel("pairwise accuracy")
    ax.set_ylim(0, 1.05)
    ax.set_title("Pairwise accuracy by difficulty")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    _save(fig, path, left_out)
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
            ax.plot(values, [np.nan if y is None else y for y in ys], label=label, **style_of(label, i))
        ax.set_xlabel(knob)
        ax.set_ylabel(metric.replace("_", " "))
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_title(f"Label accuracy vs {knob}")
    axes[1].set_title(f"Pairwise accuracy vs {knob}")
    _save(fig, path, None)
    plt.close(fig)
    return path


def write_report(results: dict[str, Any], details: dict[str, dict], directory: Path,
                 needs_answers=frozenset()) -> Path:
    """``report.md`` with the table, one line per metric and the three plots, in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    data = results["data"]
    left_out = left_out_of_plots(details, data["groups"])
    plots = [
        ("Rewards of correct vs incorrect rollouts", left_out.get("rewards"),
         plot_reward_distributions(details, directory / "rewards_by_correctness.png", left_out=left_out.get("rewards"))),
        ("Label accuracy against majority ratio", left_out.get("label"),
         plot_label_accuracy_vs_majority(details, directory / "label_accuracy_vs_majority_ratio.png", left_out=left_out.get("label"))),
        ("Pairwise accuracy by difficulty (ground-truth ratio)", left_out.get("pairwise"),
         plot_pairwise_by_difficulty(details, directory / "pairwise_by_difficulty.png", left_out=left_out.get("pairwise"))),
    ]
    lines = ["# ttrl bench report", "",
             f"Data: `{display_path(data['path'])}`: {data['groups']} groups, {data['rollouts']} rollouts."]
    note = results.get("harness", {}).get("data_note")
    if note:
        lines += ["", f"> {note}"]
    lines += ["", markdown_table(results, needs_answers), "", "Bold: best value per metric. — : the metric does not apply.", ""]
    for entry in results["estimators"]:
        if entry.get("skipped"):
            lines.append(f"- **{entry.get('label') or entry['name']}** {entry['skipped']}")
        for err in entry.get("errors", []):
            lines.append(f"- **{entry.get('label') or entry['name']}** failed on group `{err['group']}`: {err['error']}")
    lines += ["", "## Metrics", "", "Per group over its N rollouts, averaged over the groups that have a reference:", ""]
    lines += [f"- **{name}**: {text}." for name, text in METRIC_LINES]
    lines += ["", f"Definitions: [formats]({DOCS_URL}/formats.md#metrics); how the bench runs: [bench]({DOCS_URL}/bench.md)."]
    for title, omitted, plot in plots:
        if plot is not None:
            lines += ["", f"## {title}", "", f"![{title}]({plot.name})"]
            if omitted:
                lines += ["", f"Left out: {omitted}."]
    path = directory / "report.md"
    with atomic_write(path) as handle:
        handle.write("\n".join(lines) + "\n")
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
    lines += ["", f"![sweep]({plot.name})", "",
              f"Metric definitions: [formats]({DOCS_URL}/formats.md#metrics); sweeps: [bench]({DOCS_URL}/bench.md)."]
    path = directory / "report.md"
    with atomic_write(path) as handle:
        handle.write("\n".join(lines) + "\n")
    return path

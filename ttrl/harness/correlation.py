"""Estimators' accuracy against rollout correlation, for the bench report.

Rollout correlation of a group is the mean pairwise token overlap of its responses
(:func:`ttrl.core.similarity.rollout_correlation`; DARE's proxy). DARE shows majority voting failing as
it rises; ``bench --simulate --sweep correlation=...`` varies a simulated version of it, and this plot
shows the same relation on real rollouts: groups are cut into bins of equal size by their measured
correlation, and each estimator's label accuracy and pooled pairwise accuracy are drawn per bin.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

#: At most this many bins; fewer when there are few groups (at least 4 groups per bin).
MAX_BINS = 5
MIN_GROUPS_PER_BIN = 4


def correlation_bins(correlation: list[float | None]) -> list[tuple[float, float, list[int]]]:
    """``(low, high, group indices)`` of equal-count bins over the groups that have a correlation."""
    indexed = sorted((c, i) for i, c in enumerate(correlation) if c is not None)
    if not indexed:
        return []
    count = max(1, min(MAX_BINS, len(indexed) // MIN_GROUPS_PER_BIN))
    bins = []
    for part in np.array_split(np.arange(len(indexed)), count):
        members = [indexed[k] for k in part]
        bins.append((members[0][0], members[-1][0], [i for _, i in members]))
    return bins


def accuracy_by_correlation(detail: dict[str, Any], bins) -> dict[str, list[float | None]]:
    """Label accuracy (mean over groups with a label) and pooled pairwise accuracy in each bin."""
    scores = detail["scores"]
    label, pairwise = [], []
    for _, _, members in bins:
        labels = [scores["label_accuracy"][i] for i in members if scores["label_accuracy"][i] is not None]
        label.append(float(np.mean(labels)) if labels else None)
        count = sum(scores["pair_count"][i] for i in members)
        pairwise.append(sum(scores["pair_wins"][i] for i in members) / count if count else None)
    return {"label_accuracy": label, "pairwise_accuracy": pairwise}


def plot_accuracy_by_correlation(details: dict[str, dict], path: Path) -> Path | None:
    """Two panels (label accuracy, pairwise accuracy) against rollout-correlation bins, one line per estimator."""
    first = next(iter(details.values()), None)
    if first is None or not first.get("correlation"):
        return None
    bins = correlation_bins(first["correlation"])
    if len(bins) < 2:
        return None
    from .report import _pyplot, style_of

    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    ticks = [f"{lo:.2f}-{hi:.2f}\n{len(m)} groups" for lo, hi, m in bins]
    for i, (label, detail) in enumerate(details.items()):
        values = accuracy_by_correlation(detail, bins)
        for metric, ax in zip(("label_accuracy", "pairwise_accuracy"), axes):
            ys = values[metric]
            if all(y is None for y in ys):
                continue
            ax.plot(range(len(bins)), [np.nan if y is None else y for y in ys], label=label, **style_of(label, i))
    for metric, ax in zip(("label_accuracy", "pairwise_accuracy"), axes):
        ax.set_xticks(range(len(bins)), ticks, fontsize=7)
        ax.set_xlabel("rollout correlation (mean pairwise token overlap) of the group")
        ax.set_ylabel(metric.replace("_", " "))
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_title("Label accuracy by rollout correlation")
    axes[1].set_title("Pairwise accuracy by rollout correlation")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

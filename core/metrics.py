"""Reward-quality metrics (defined in docs/formats.md), for the bench harness and for trainers' logging.

Per group over its N rollouts, then averaged over the groups that have a reference; a rollout is
*correct* when its answer is equivalent to the reference. ``pairwise_accuracy`` is pooled over all
(correct, incorrect) pairs of the dataset rather than averaged per group.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .answers import AnswerEngine
from .data import AnswerClasses

METRIC_NAMES = (
    "label_accuracy",
    "reward_accuracy",
    "majority_ratio",
    "pairwise_accuracy",
    "ground_truth_ratio",
    "pass_at_n",
)


@dataclass(frozen=True, slots=True)
class GroupTruth:
    """What the reference says about one group's rollouts; computed once, shared by all estimators."""

    correct: tuple[bool, ...]
    reference: str
    task: str


def grade_group(engine: AnswerEngine, classes: AnswerClasses, reference: str, task: str) -> GroupTruth:
    """Correctness of every rollout: one equivalence check per answer class, not per rollout."""
    class_correct = [engine.equivalent(rep, reference, task) for rep in classes.representatives]
    correct = tuple(bool(c >= 0 and class_correct[c]) for c in classes.class_ids)
    return GroupTruth(correct=correct, reference=reference, task=task)


def label_support(engine: AnswerEngine, classes: AnswerClasses, label: str | None, task: str) -> int | None:
    """Number of rollouts whose answer is equivalent to ``label`` (the label's answer class size)."""
    if label is None:
        return None
    sizes = classes.sizes()
    for k, rep in enumerate(classes.representatives):
        if rep == label:
            return sizes[k]
    for k, rep in enumerate(classes.representatives):
        if engine.equivalent(rep, label, task):
            return sizes[k]
    return 0


@dataclass(frozen=True, slots=True)
class GroupScore:
    """One estimator's metrics on one group (``None`` where a metric does not apply)."""

    label_accuracy: float | None
    reward_accuracy: float | None
    majority_ratio: float | None
    ground_truth_ratio: float
    pass_at_n: float
    pair_wins: float
    pair_count: int
    #: N (None: unknown). A group without rollouts has no reward accuracy and must not null the dataset's.
    num_rollouts: int | None = None


def score_group(
    rewards: Sequence[float],
    correct: Sequence[bool],
    *,
    label: str | None,
    label_correct: bool | None,
    label_size: int | None,
) -> GroupScore:
    """Score one group's estimated rewards against the rollouts' true correctness."""
    n = len(correct)
    r = np.asarray(rewards, dtype=np.float64)
    truth = np.asarray(correct, dtype=bool)
    binary = bool(np.all((r == 0.0) | (r == 1.0)))
    reward_accuracy = float(np.mean(r == truth.astype(np.float64))) if binary and n else None
    pos, neg = r[truth], r[~truth]
    if pos.size and neg.size:
        diff = pos[:, None] - neg[None, :]
        wins = float(np.sum(diff > 0) + 0.5 * np.sum(diff == 0))
        count = int(pos.size * neg.size)
    else:
        wins, count = 0.0, 0
    return GroupScore(
        label_accuracy=None if label is None else float(bool(label_correct)),
        reward_accuracy=reward_accuracy,
        majority_ratio=None if label is None or not n else (label_size or 0) / n,
        ground_truth_ratio=float(truth.mean()) if n else 0.0,
        pass_at_n=float(truth.any()),
        pair_wins=wins,
        pair_count=count,
        num_rollouts=n,
    )


@dataclass
class MetricsAccumulator:
    """Adds up :class:`GroupScore` values of one estimator over a dataset (or a training step)."""

    scores: list[GroupScore] = field(default_factory=list)
    any_label: bool = False

    def add(self, score: GroupScore) -> None:
        self.scores.append(score)
        self.any_label |= score.label_accuracy is not None

    def result(self) -> dict[str, float | None]:
        s = self.scores
        if not s:
            return dict.fromkeys(METRIC_NAMES)
        # an estimator that labels some groups but not others scores 0 where it gave no label
        label_acc = float(np.mean([x.label_accuracy or 0.0 for x in s])) if self.any_label else None
        majority = float(np.mean([x.majority_ratio or 0.0 for x in s])) if self.any_label else None
        binary = [x.reward_accuracy for x in s if x.num_rollouts != 0]
        reward_acc = None if not binary or any(v is None for v in binary) else float(np.mean(binary))
        pairs = sum(x.pair_count for x in s)
        return {
            "label_accuracy": label_acc,
            "reward_accuracy": reward_acc,
            "majority_ratio": majority,
            "pairwise_accuracy": (sum(x.pair_wins for x in s) / pairs) if pairs else None,
            "ground_truth_ratio": float(np.mean([x.ground_truth_ratio for x in s])),
            "pass_at_n": float(np.mean([x.pass_at_n for x in s])),
        }


def evaluate_group(
    engine: AnswerEngine,
    classes: AnswerClasses,
    truth: GroupTruth,
    rewards: Sequence[float],
    label: str | None,
) -> GroupScore:
    """Convenience for trainers: score one estimate given the group's answer classes and truth."""
    return score_group(
        rewards,
        truth.correct,
        label=label,
        label_correct=None if label is None else engine.equivalent(label, truth.reference, truth.task),
        label_size=label_support(engine, classes, label, truth.task),
    )

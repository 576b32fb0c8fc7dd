"""Reward-quality metrics of CONTRACT.md, for the bench harness and for trainers' logging.

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
    #: Whether each answer class (``classes.representatives[k]``) is correct; empty when not known.
    class_correct: tuple[bool, ...] = ()


def grade_group(engine: AnswerEngine, classes: AnswerClasses, reference: str, task: str) -> GroupTruth:
    """Correctness of every rollout: one equivalence check per answer class, not per rollout."""
    class_correct = tuple(bool(engine.equivalent(rep, reference, task)) for rep in classes.representatives)
    correct = tuple(c >= 0 and class_correct[c] for c in classes.class_ids)
    return GroupTruth(correct=correct, reference=reference, task=task, class_correct=class_correct)


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


def label_facts(engine: AnswerEngine, classes: AnswerClasses, truth: GroupTruth,
                label: str | None) -> tuple[bool | None, int | None]:
    """Whether ``label`` is equivalent to the reference, and the size of its answer class.

    A label that is one of the classes' representatives (as voting labels are) needs no equivalence
    check: grading already decided each class's correctness.
    """
    if label is None:
        return None, None
    if truth.class_correct and label in classes.representatives:
        k = classes.representatives.index(label)
        return truth.class_correct[k], classes.sizes()[k]
    return engine.equivalent(label, truth.reference, truth.task), label_support(engine, classes, label, truth.task)


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


#: The fields of :class:`GroupScore` that depend only on the rollouts' correctness, not on an estimate:
#: the same for every estimator, so the bench computes them once per group.
TRUTH_FIELDS = ("ground_truth_ratio", "pass_at_n", "pair_count", "num_rollouts")
#: The fields of :class:`GroupScore` that depend on an estimate.
ESTIMATE_FIELDS = ("label_accuracy", "reward_accuracy", "majority_ratio", "pair_wins")


def truth_facts(correct: Sequence[bool]) -> dict[str, float | int]:
    """The :data:`TRUTH_FIELDS` of one group."""
    n = len(correct)
    k = sum(map(bool, correct))
    return {"ground_truth_ratio": k / n if n else 0.0, "pass_at_n": float(k > 0), "pair_count": k * (n - k),
            "num_rollouts": n}


def pair_wins(rewards: np.ndarray, correct: np.ndarray) -> float:
    """Over all (correct, incorrect) pairs, how many the correct rollout wins: 1 when its reward is
    higher, 1/2 when equal (a pair counts when correct − incorrect is > 0 or == 0, so a NaN reward,
    or two equal infinities, count nothing).

    From ranks: after sorting the incorrect rewards once, each correct reward's wins and ties are two
    binary searches, so a group costs O(N log N) time and O(N) memory (not an N x N matrix).
    """
    pos = rewards[correct]
    neg = np.sort(rewards[~correct])  # NaN sorts last: never below or equal to a number
    if not pos.size or not neg.size:
        return 0.0
    pos = pos[~np.isnan(pos)]  # searchsorted would place a NaN above everything
    below = np.searchsorted(neg, pos, side="left")
    ties = np.searchsorted(neg, pos, side="right") - below
    ties[np.isinf(pos)] = 0  # inf - inf is NaN: not a tie
    return float(int(below.sum()) + 0.5 * int(ties.sum()))


def estimate_facts(
    rewards: Sequence[float],
    correct: Sequence[bool],
    *,
    label: str | None,
    label_correct: bool | None,
    label_size: int | None,
) -> dict[str, float | None]:
    """The :data:`ESTIMATE_FIELDS` of one estimate of one group."""
    n = len(correct)
    r = np.asarray(rewards, dtype=np.float64)
    truth = np.asarray(correct, dtype=bool)
    binary = bool(np.all((r == 0.0) | (r == 1.0)))
    return {
        "label_accuracy": None if label is None else float(bool(label_correct)),
        "reward_accuracy": float(np.mean(r == truth.astype(np.float64))) if binary and n else None,
        "majority_ratio": None if label is None or not n else (label_size or 0) / n,
        "pair_wins": pair_wins(r, truth),
    }


def score_group(
    rewards: Sequence[float],
    correct: Sequence[bool],
    *,
    label: str | None,
    label_correct: bool | None,
    label_size: int | None,
) -> GroupScore:
    """Score one group's estimated rewards against the rollouts' true correctness."""
    return GroupScore(**truth_facts(correct),
                      **estimate_facts(rewards, correct, label=label, label_correct=label_correct, label_size=label_size))


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
    label_correct, label_size = label_facts(engine, classes, truth, label)
    return score_group(rewards, truth.correct, label=label, label_correct=label_correct, label_size=label_size)

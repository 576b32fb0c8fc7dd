"""The data model: rollouts, prompt groups, answer classes and estimates.

Hot paths (estimators, trainers) work on these plain dataclasses; pydantic only validates what users
write (see :mod:`ttrl.core.rollout_files`). An estimator receives a :class:`RolloutGroup`, which has
no reference answer at all: the reference lives beside it in :class:`GroupRecord`, for metrics only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Per-rollout summary statistics of CONTRACT.md (``stats``).
STAT_FIELDS = ("num_tokens", "mean_entropy", "mean_self_certainty", "mean_logprob", "mean_confidence")
#: Per-token arrays of CONTRACT.md and the ``mean_*`` statistic each one summarises.
TOKEN_FIELDS = {
    "token_entropy": "mean_entropy",
    "token_self_certainty": "mean_self_certainty",
    "token_logprob": "mean_logprob",
    "token_confidence": "mean_confidence",
}
DEFAULT_TASK = "math"


@dataclass(slots=True)
class Rollout:
    """One sampled response. Only ``text`` is required; the rest is optional input."""

    text: str
    answer: str | None = None
    stats: dict[str, float] = field(default_factory=dict)
    token_entropy: np.ndarray | None = None
    token_self_certainty: np.ndarray | None = None
    token_logprob: np.ndarray | None = None
    #: DeepConf's token confidence −(1/k) Σ_{top-k} log p_t(j); its k is the file's ``meta.confidence_k``.
    token_confidence: np.ndarray | None = None

    def stat(self, name: str) -> float | None:
        """A ``stats`` value, or the mean of the matching per-token array when only that is present."""
        value = self.stats.get(name)
        if value is not None:
            return float(value)
        for array_name, mean_name in TOKEN_FIELDS.items():
            if mean_name == name:
                array = getattr(self, array_name)
                if array is not None and len(array):
                    return float(np.mean(array))
        if name == "num_tokens":
            for array_name in TOKEN_FIELDS:
                array = getattr(self, array_name)
                if array is not None:
                    return float(len(array))
        return None

    def has(self, name: str) -> bool:
        """Whether the input ``name`` (a stat, a token array or ``"answer"``) is available."""
        if name in TOKEN_FIELDS:
            return getattr(self, name) is not None
        if name == "answer":
            return self.answer is not None
        return self.stat(name) is not None


@dataclass(slots=True)
class AnswerClasses:
    """Rollouts' extracted answers grouped into equivalence classes by the answer engine.

    ``class_ids[i]`` is rollout *i*'s class, or ``-1`` when it has no answer. Classes are numbered in
    order of first appearance; ``representatives[k]`` is class *k*'s label: its cleanest member (the
    most frequent normalised spelling, the shortest among equally frequent ones).
    """

    answers: list[str | None]
    class_ids: list[int]
    representatives: list[str]
    diagnostics: dict[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.representatives)

    def sizes(self) -> list[int]:
        """Number of rollouts in each class."""
        counts = [0] * len(self.representatives)
        for k in self.class_ids:
            if k >= 0:
                counts[k] += 1
        return counts

    def members(self, k: int) -> list[int]:
        """Indices of the rollouts in class ``k``."""
        return [i for i, c in enumerate(self.class_ids) if c == k]


@dataclass(slots=True)
class RolloutGroup:
    """One prompt and its N rollouts: what an estimator sees. There is no reference here, by design."""

    id: str
    prompt: str
    rollouts: list[Rollout]
    task: str = DEFAULT_TASK
    meta: dict[str, Any] = field(default_factory=dict)
    #: Answer classes, attached by the host for estimators that require ``"answers"``.
    classes: AnswerClasses | None = None

    def __len__(self) -> int:
        return len(self.rollouts)


@dataclass(slots=True)
class GroupRecord:
    """A line of a rollout file: the group, its optional reference answer, and where it came from."""

    group: RolloutGroup
    reference: str | None = None
    source: str | None = None  # "file.jsonl:12"


@dataclass(slots=True)
class Estimate:
    """An estimator's (or shaper's) output for one group: one reward per rollout."""

    rewards: list[float]
    label: str | None = None
    diagnostics: dict[str, Any] = field(default_factory=dict)
    #: Rollouts a trainer should train on (TTRL votes over 64 samples and trains on 32 of them);
    #: ``None`` means all. Rewards are still given for every rollout.
    train_indices: list[int] | None = None

    @classmethod
    def failure(cls, num_rollouts: int, reason: str) -> Estimate:
        """What a group gets when its estimator failed on it: no label, every reward 0, the reason."""
        return cls(rewards=[0.0] * num_rollouts, label=None, diagnostics={"error": reason})

"""Group-level reward estimation for a trainer, free of any trainer framework.

A trainer hands over one prompt's N sampled responses (texts, optional per-token statistics, optional
reference answer) and gets back one reward per response, the responses to train on, and the
reward-quality metrics of docs/formats.md. The reference answer is used for metrics only: the estimator
never sees it (it is not part of the :class:`RolloutGroup`).

TTRL (Zuo et al., 2025) votes over ``n_votes`` = 64 samples and trains on ``n_train`` = 32 of them; the
subset comes from ``Estimate.train_indices`` when the estimator chooses one, else the first ``n_train``
(samples are i.i.d., and this is what TTRL's reference code does).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ttrl.core.config import ComponentSpec, RunConfig
from ttrl.core.data import STAT_FIELDS, TOKEN_FIELDS, Rollout, RolloutGroup
from ttrl.core.errors import EstimatorFailure, OptionError
from ttrl.core.estimation import EstimationPipeline
from ttrl.core.metrics import MetricsAccumulator
from ttrl.core.registry import ANSWERS, Registry

logger = logging.getLogger(__name__)

#: Token statistics a trainer can compute from the policy's logits (definitions in docs/formats.md).
TOKEN_STAT_INPUTS = frozenset(STAT_FIELDS) | frozenset(TOKEN_FIELDS)


@dataclass(slots=True)
class GroupResult:
    """Rewards for all ``n_votes`` responses, which ``n_train`` of them to train on, and metrics."""

    rewards: list[float]
    train_indices: list[int]
    label: str | None
    failed: bool = False
    diagnostics: dict[str, Any] = field(default_factory=dict)


def stats_required(pipeline: EstimationPipeline) -> frozenset[str]:
    """The token statistics (not answers) the estimator and shapers read."""
    return frozenset(pipeline.requires - {ANSWERS})


def bind_train_size(config: RunConfig, registry: Registry, n_votes: int, n_train: int) -> RunConfig:
    """Hand ``n_train`` to estimators that choose their own train subset (an ``n_train`` option).

    A different ``n_train`` already set in the estimator's options is a conflict the user must resolve.
    """
    spec = config.estimator
    if spec is None or n_train >= n_votes:
        return config
    info = registry.estimators.get(spec.name)
    if info.options is None or "n_train" not in info.options.model_fields:
        return config
    given = spec.options.get("n_train")
    if given is not None and given != n_train:
        where = config.locate(("estimator", "options", "n_train"))
        raise OptionError(
            f"estimator.options.n_train is {given} but openrlhf.n_train is {n_train}"
            + (f" ({where})" if where else "")
            + ". Set the train size once, in the openrlhf: section."
        )
    options = {**spec.options, "n_train": n_train}
    updated = config.model_copy(update={"estimator": ComponentSpec(name=spec.name, options=options, label=spec.label)})
    updated._locator = config._locator
    return updated


class GroupEstimator:
    """Runs an :class:`EstimationPipeline` on one prompt group at a time and keeps step metrics."""

    def __init__(self, pipeline: EstimationPipeline, *, n_votes: int, n_train: int, task: str | None = None):
        if not 1 <= n_train <= n_votes:
            raise OptionError(f"n_train ({n_train}) must be between 1 and n_votes ({n_votes}).")
        self.pipeline = pipeline
        self.n_votes = n_votes
        self.n_train = n_train
        self.task = task
        self.metrics = MetricsAccumulator()
        self.failed_groups = 0
        self.groups = 0

    @property
    def needs_token_stats(self) -> bool:
        return bool(stats_required(self.pipeline))

    def build_group(
        self,
        group_id: str,
        prompt: str,
        texts: Sequence[str],
        token_stats: Sequence[Mapping[str, np.ndarray]] | None = None,
    ) -> RolloutGroup:
        """A :class:`RolloutGroup` from texts and, per response, arrays named like ``Rollout`` fields."""
        rollouts = []
        for i, text in enumerate(texts):
            rollout = Rollout(text=text)
            if token_stats is not None:
                arrays = token_stats[i]
                for name in TOKEN_FIELDS:
                    if name in arrays:
                        setattr(rollout, name, np.asarray(arrays[name], dtype=np.float64))
                for name, mean_name in TOKEN_FIELDS.items():
                    values = getattr(rollout, name)
                    if values is not None and len(values):
                        rollout.stats[mean_name] = float(np.mean(values))
                        rollout.stats["num_tokens"] = float(len(values))
            rollouts.append(rollout)
        kwargs = {"task": self.task} if self.task else {}
        return RolloutGroup(id=group_id, prompt=prompt, rollouts=rollouts, **kwargs)

    def estimate(
        self,
        group_id: str,
        prompt: str,
        texts: Sequence[str],
        *,
        token_stats: Sequence[Mapping[str, np.ndarray]] | None = None,
        reference: str | None = None,
    ) -> GroupResult:
        """Rewards and train subset for one prompt's ``n_votes`` responses; metrics when ``reference`` is given.

        Missing token statistics raise :class:`EstimatorInputError` (a configuration problem, for the whole
        run); an estimator that fails on this group gives it all-zero rewards, which group-normalised
        advantages turn into no update for this prompt, and is counted in ``failed_groups``.
        """
        if len(texts) != self.n_votes:
            raise ValueError(f"group {group_id!r} has {len(texts)} responses, expected n_votes={self.n_votes}")
        group = self.build_group(group_id, prompt, texts, token_stats)
        self.pipeline.check_inputs(group)
        self.groups += 1
        try:
            estimate, score = self.pipeline.run_and_score(group, reference)
        except EstimatorFailure as exc:
            logger.warning("%s; its responses get reward 0", exc)
            self.failed_groups += 1
            return GroupResult([0.0] * self.n_votes, list(range(self.n_train)), None, True, {"error": str(exc)})
        train = estimate.train_indices if estimate.train_indices is not None else list(range(self.n_train))
        if self.n_train == self.n_votes:
            train = list(range(self.n_votes))
        if len(train) != self.n_train or len(set(train)) != len(train) or not all(0 <= i < self.n_votes for i in train):
            raise EstimatorFailure(
                self.pipeline.estimator.name, group_id,
                f"train_indices must be {self.n_train} distinct indices below {self.n_votes}, got {train}",
            )
        if score is not None:
            self.metrics.add(score)
        return GroupResult(list(estimate.rewards), sorted(train), estimate.label, False, dict(estimate.diagnostics))

    def step_metrics(self) -> dict[str, float]:
        """Metrics since the last call (one training step), then reset. Absent where undefined."""
        result = {k: v for k, v in self.metrics.result().items() if v is not None} if self.metrics.scores else {}
        result["failed_groups"] = float(self.failed_groups)
        result["groups"] = float(self.groups)
        self.metrics = MetricsAccumulator()
        self.failed_groups = 0
        self.groups = 0
        return result

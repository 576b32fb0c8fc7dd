"""Group rewards for a trainer batch: the framework-free half of the TRL adapter.

A GRPO batch is a flat list of completions in which each prompt's ``num_generations`` completions sit
next to each other (TRL's ``RepeatSampler`` guarantees it for the global batch). This module cuts the
flat list into prompt groups, runs the :class:`~ttrl.core.estimation.EstimationPipeline` once per
group, and hands back one reward per completion in the same order, plus the reward-quality metrics of
:mod:`ttrl.core.metrics` when the hidden reference is known. Nothing here imports torch or TRL.

The vote/train split: the estimator always sees every completion of the group (it votes over all N);
when its :class:`~ttrl.core.data.Estimate` names ``train_indices``, the other completions get ``None``
as their *trainer* reward. TRL treats a completion whose every reward is ``None`` as unscorable: it is
left out of the group's mean and std and its advantage is 0, so it does not move the policy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ttrl.core.data import Estimate, Rollout, RolloutGroup
from ttrl.core.errors import EstimatorFailure, EstimatorInputError, UserError
from ttrl.core.estimation import EstimationPipeline
from ttrl.core.metrics import MetricsAccumulator


class GroupLayoutError(UserError):
    """A batch whose completions are not laid out as consecutive groups of ``num_generations``."""


@dataclass(frozen=True, slots=True)
class BatchItem:
    """One completion of a trainer batch, with the columns of the prompt it answers."""

    group_id: str
    prompt: str
    rollout: Rollout
    task: str
    #: The hidden reference answer, for metrics only: it never reaches the estimator.
    reference: str | None = None


@dataclass
class GroupResult:
    group: RolloutGroup
    estimate: Estimate
    reference: str | None


@dataclass
class BatchRewards:
    """Rewards for one batch, in the batch's order, and what the estimator said about each group."""

    #: What the trainer gets: the estimator's reward, or ``None`` for rollouts outside ``train_indices``.
    trainer_rewards: list[float | None]
    #: The estimator's (and shapers') reward for every rollout, trained on or not (NaN in a failed group).
    estimator_rewards: list[float]
    groups: list[GroupResult] = field(default_factory=list)
    #: Reward-quality metrics (``METRIC_NAMES``) over the groups that have a reference; empty without any.
    metrics: dict[str, float | None] = field(default_factory=dict)
    #: Why groups were skipped (their estimator rewards are NaN and their trainer rewards None).
    failures: list[str] = field(default_factory=list)

    @property
    def labels(self) -> list[str | None]:
        return [g.estimate.label for g in self.groups]


def split_groups(items: Sequence[BatchItem], num_generations: int) -> list[list[BatchItem]]:
    """Cut a flat batch into prompt groups of ``num_generations`` consecutive items.

    Groups are found by position, not by comparing prompt text (two dataset rows may share a prompt),
    and every block is checked to hold one prompt id so that a changed sampler fails loudly instead of
    mixing two prompts' votes.
    """
    if num_generations < 1:
        raise ValueError(f"num_generations must be >= 1, got {num_generations}")
    if len(items) % num_generations:
        raise GroupLayoutError(
            f"The trainer passed {len(items)} completions, not a multiple of num_generations={num_generations}: "
            "prompt groups would be cut apart. Make the batch size a multiple of num_generations."
        )
    blocks = [list(items[i : i + num_generations]) for i in range(0, len(items), num_generations)]
    for block in blocks:
        ids = {item.group_id for item in block}
        if len(ids) != 1:
            raise GroupLayoutError(
                f"A block of {num_generations} consecutive completions mixes prompts {sorted(ids)}: the trainer "
                "did not keep each prompt's generations together, so its votes cannot be counted. This adapter "
                "supports TRL versions whose sampler repeats each prompt num_generations times in a row."
            )
    return blocks


def trained_positions(estimate: Estimate, group_id: str, estimator: str, size: int, n_train: int | None) -> set[int]:
    """Which rollouts of a group the trainer learns from: the estimate's ``train_indices`` when it names
    them, else the first ``n_train`` (samples are i.i.d., as TTRL's reference code assumes), else all."""
    if estimate.train_indices is not None:
        chosen = list(estimate.train_indices)
        if len(set(chosen)) != len(chosen) or not all(0 <= i < size for i in chosen):
            raise EstimatorFailure(estimator, group_id, f"train_indices must be distinct indices below {size}, got {chosen}")
        return set(chosen)
    if n_train is not None and n_train < size:
        return set(range(n_train))
    return set(range(size))


def estimate_batch(
    pipeline: EstimationPipeline, items: Sequence[BatchItem], num_generations: int, n_train: int | None = None
) -> BatchRewards:
    """Run the estimator once per prompt group of a trainer batch; rewards come back in batch order."""
    trainer_rewards: list[float | None] = []
    estimator_rewards: list[float] = []
    results: list[GroupResult] = []
    accumulator = MetricsAccumulator()
    failures: list[str] = []
    for block in split_groups(items, num_generations):
        first = block[0]
        group = RolloutGroup(id=first.group_id, prompt=first.prompt, rollouts=[it.rollout for it in block], task=first.task)
        try:
            pipeline.check_inputs(group)
            estimate, score = pipeline.run_and_score(group, first.reference)
            keep = trained_positions(estimate, group.id, pipeline.estimator.name, len(block), n_train)
        except (EstimatorInputError, EstimatorFailure) as exc:
            # one bad group (an empty completion has no mean entropy; an estimator bug on odd input) must
            # not end the run: its rollouts get no reward, which TRL turns into advantage 0
            failures.append(str(exc))
            estimate = Estimate([math.nan] * len(block), None, {"failed": str(exc)})
            estimator_rewards.extend(estimate.rewards)
            trainer_rewards.extend([None] * len(block))
            results.append(GroupResult(group, estimate, first.reference))
            continue
        estimator_rewards.extend(estimate.rewards)
        trainer_rewards.extend(r if i in keep else None for i, r in enumerate(estimate.rewards))
        results.append(GroupResult(group, estimate, first.reference))
        if score is not None:
            accumulator.add(score)
    metrics = accumulator.result() if accumulator.scores else {}
    return BatchRewards(trainer_rewards, estimator_rewards, results, metrics, failures)


def group_summary(result: GroupResult) -> dict[str, Any]:
    """A JSON-ready record of one group's estimate, for the run summary."""
    return {
        "id": result.group.id,
        "label": result.estimate.label,
        "reference": result.reference,
        "rewards": [None if math.isnan(r) else r for r in result.estimate.rewards],
        "train_indices": result.estimate.train_indices,
        "answers": None if result.group.classes is None else list(result.group.classes.answers),
        **({"failed": result.estimate.diagnostics["failed"]} if "failed" in result.estimate.diagnostics else {}),
    }

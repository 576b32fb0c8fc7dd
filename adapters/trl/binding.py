"""The TRL side of the adapter: a GRPOTrainer reward function backed by an EstimationPipeline.

TRL calls a reward function once per generation batch, on each process, with that process's slice of
the batch: ``prompts``, ``completions``, ``completion_ids``, every dataset column as a list, and
``trainer_state`` / ``log_metric``. On one process the slice is the whole batch and each prompt's
``num_generations`` completions are consecutive. With several processes a prompt's group can straddle
two slices, so :class:`EstimatorReward` gathers every process's rollouts, scores whole groups (the
same result on every process) and returns its own slice.

Token statistics come from the policy itself: one no-grad forward pass over prompt + completion,
logits divided by the sampling temperature, then :func:`ttrl.token_stats.token_statistics` over the
generated tokens only.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ttrl.core.data import STAT_FIELDS, TOKEN_FIELDS, Rollout
from ttrl.core.estimation import EstimationPipeline
from ttrl.token_stats import token_statistics

from .group_rewards import BatchItem, BatchRewards, estimate_batch, group_summary

#: Completions per forward pass when computing token statistics (bounds the [B, T, V] logits).
STATS_BATCH = 8


def policy_token_stats(
    model: Any,
    prompt_ids: Sequence[Sequence[int]],
    completion_ids: Sequence[Sequence[int]],
    *,
    temperature: float,
    pad_token_id: int,
) -> list[dict[str, np.ndarray]]:
    """Per-token entropy, self-certainty and log-prob of each completion under ``model`` at ``temperature``."""
    device = next(model.parameters()).device
    out: list[dict[str, np.ndarray]] = []
    for start in range(0, len(completion_ids), STATS_BATCH):
        prompts = prompt_ids[start : start + STATS_BATCH]
        completions = completion_ids[start : start + STATS_BATCH]
        lengths = [len(p) + len(c) for p, c in zip(prompts, completions)]
        width = max(lengths)
        # right padding: each row's positions start at 0, so no position ids are needed
        input_ids = torch.full((len(prompts), width), pad_token_id, dtype=torch.long, device=device)
        attention = torch.zeros_like(input_ids)
        for row, (p, c) in enumerate(zip(prompts, completions)):
            ids = torch.tensor(list(p) + list(c), dtype=torch.long, device=device)
            input_ids[row, : len(ids)] = ids
            attention[row, : len(ids)] = 1
        with torch.no_grad():
            logits = model(input_ids=input_ids, attention_mask=attention).logits
        for row, (p, c) in enumerate(zip(prompts, completions)):
            if not len(c):
                out.append({name: np.zeros(0, dtype=np.float64) for name in TOKEN_FIELDS})
                continue
            # logits at position t predict token t+1: the completion's tokens are predicted from len(p)-1 on
            step_logits = logits[row, len(p) - 1 : len(p) - 1 + len(c)]
            tokens = torch.tensor(list(c), dtype=torch.long, device=device)
            stats = token_statistics(step_logits, tokens=tokens, temperature=temperature)
            out.append({name: values.double().cpu().numpy() for name, values in stats.arrays().items()})
        del logits
    return out


def make_rollout(text: str, token_arrays: dict[str, np.ndarray] | None) -> Rollout:
    if token_arrays is None:
        return Rollout(text=text)
    stats: dict[str, float] = {"num_tokens": float(len(token_arrays["token_entropy"]))}
    for array_name, mean_name in TOKEN_FIELDS.items():
        values = token_arrays[array_name]
        stats[mean_name] = float(values.mean()) if len(values) else math.nan
    return Rollout(text=text, stats=stats, **token_arrays)


@dataclass
class StepRecord:
    """What the estimator returned at one generation step (for the summary and for tests)."""

    step: int
    trainer_rewards: list[float | None]
    estimator_rewards: list[float]
    groups: list[dict[str, Any]]
    metrics: dict[str, float | None]
    #: This process's completion token ids, in batch order (what the token statistics were computed on).
    completion_ids: list[list[int]] = field(default_factory=list)


@dataclass
class EstimatorReward:
    """A GRPOTrainer reward function: each call scores whole prompt groups with the pipeline.

    ``bind(trainer)`` must be called after the trainer is built when the estimator needs token
    statistics (the policy and tokenizer come from it).
    """

    pipeline: EstimationPipeline
    num_generations: int
    temperature: float
    #: Completions per group trained on when the estimate names no train_indices (None: all).
    n_train: int | None = None
    history: list[StepRecord] = field(default_factory=list)
    trainer: Any = None
    __name__: str = "ttrl"

    def __post_init__(self) -> None:
        self.__name__ = f"ttrl_{self.pipeline.estimator.name}"
        self.needs_stats = bool(self.pipeline.requires & (set(STAT_FIELDS) | set(TOKEN_FIELDS)))

    def bind(self, trainer: Any) -> None:
        self.trainer = trainer

    def _token_arrays(self, prompts: list[str], completion_ids: list[list[int]]) -> list[dict[str, np.ndarray] | None]:
        if not self.needs_stats:
            return [None] * len(prompts)
        if self.trainer is None:
            raise RuntimeError("EstimatorReward.bind(trainer) was not called; token statistics need the policy")
        tokenizer = self.trainer.processing_class
        # the same call GRPOTrainer makes for plain-text prompts, so the ids are the ones generation saw
        prompt_ids = tokenizer(text=prompts)["input_ids"]
        model = self.trainer.accelerator.unwrap_model(self.trainer.model)
        return policy_token_stats(
            model, prompt_ids, completion_ids, temperature=self.temperature, pad_token_id=tokenizer.pad_token_id
        )

    def __call__(
        self,
        prompts: list[str],
        completions: list[str],
        completion_ids: list[list[int]],
        group_id: list[str],
        task: list[str],
        reference: list[str | None] | None = None,
        trainer_state: Any = None,
        log_metric: Any = None,
        **_: Any,
    ) -> list[float | None]:
        if prompts and not isinstance(prompts[0], str):
            raise TypeError("the TRL adapter builds plain-text prompts; got conversational ones")
        completion_ids = [list(ids) for ids in completion_ids]
        arrays = self._token_arrays(list(prompts), completion_ids)
        references = reference if reference is not None else [None] * len(prompts)
        local = [
            BatchItem(group_id=g, prompt=p, rollout=make_rollout(c, a), task=t, reference=r)
            for g, p, c, a, t, r in zip(group_id, prompts, completions, arrays, task, references, strict=True)
        ]
        everything, offset = gather_items(local)
        result = estimate_batch(self.pipeline, everything, self.num_generations, self.n_train)
        self._record(result, trainer_state, log_metric)
        self.history[-1].completion_ids = completion_ids
        return result.trainer_rewards[offset : offset + len(local)]

    def _record(self, result: BatchRewards, trainer_state: Any, log_metric: Any) -> None:
        step = int(getattr(trainer_state, "global_step", len(self.history)))
        for reason in result.failures:
            warnings.warn(f"step {step + 1}: group skipped (no reward, advantage 0): {reason}", stacklevel=2)
        self.history.append(
            StepRecord(
                step=step,
                trainer_rewards=list(result.trainer_rewards),
                estimator_rewards=list(result.estimator_rewards),
                groups=[group_summary(g) for g in result.groups],
                metrics=dict(result.metrics),
            )
        )
        if log_metric is None:
            return
        for name, value in result.metrics.items():
            if value is not None:
                log_metric(f"ttrl/{name}", float(value))
        log_metric("ttrl/failed_groups", float(len(result.failures)))
        scored = [r for r in result.estimator_rewards if not math.isnan(r)]
        if scored:
            log_metric("ttrl/estimator_reward_mean", float(np.mean(scored)))


def gather_items(local: list[BatchItem]) -> tuple[list[BatchItem], int]:
    """All processes' items in process order, and where this process's slice starts.

    TRL concatenates the processes' rewards in process order before normalising per group, so the
    global list is exactly the layout its group view assumes.
    """
    from accelerate import PartialState

    state = PartialState()
    if state.num_processes == 1:
        return local, 0
    from accelerate.utils import gather_object

    everything = gather_object(local)
    return list(everything), state.process_index * len(local)

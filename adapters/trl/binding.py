"""The TRL side of the adapter: a GRPOTrainer reward function backed by an EstimationPipeline.

TRL calls a reward function once per generation batch, on each process, with that process's slice of
the batch: ``prompts``, ``completions``, ``completion_ids``, every dataset column as a list, and
``trainer_state`` / ``log_metric``. On one process the slice is the whole batch and each prompt's
``num_generations`` completions are consecutive. With several processes a prompt's group can straddle
two slices, so :class:`EstimatorReward` gathers every process's rollouts, scores whole groups (the
same result on every process) and returns its own slice.

Grouping, the estimator call, the failure policy and the metrics are the trainer-agnostic group layer
(:mod:`ttrl.core.groups`). Token statistics come from the policy itself: one no-grad forward pass over
prompt + completion, then :func:`ttrl.token_stats.response_token_stats` over the generated tokens only,
at the sampling temperature of the settings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ttrl.core.groups import GroupEstimator, GroupResult, Response
from ttrl.token_stats import response_token_stats

#: Completions per forward pass when computing token statistics (bounds the backbone's activations).
STATS_BATCH = 8


class _HeadLogits:
    """``[B, C, V]`` logits that exist only as the slices asked for: ``head(hidden[row, start:stop])``.

    :func:`ttrl.token_stats.response_token_stats` reads one row's span a chunk at a time, so the LM head
    never materializes more than one chunk of logits.
    """

    def __init__(self, head: Any, hidden: torch.Tensor) -> None:
        self.head, self.hidden = head, hidden
        self.shape = (*hidden.shape[:2], head.weight.shape[0])
        self.device = hidden.device

    def dim(self) -> int:
        return 3

    def __getitem__(self, index: tuple[int, slice]) -> torch.Tensor:
        row, span = index
        return self.head(self.hidden[row, span])


def policy_token_stats(
    model: Any,
    prompt_ids: Sequence[Sequence[int]],
    completion_ids: Sequence[Sequence[int]],
    *,
    temperature: float,
    pad_token_id: int,
) -> list[dict[str, np.ndarray]]:
    """Per completion, its token arrays (``token_*`` fields) under ``model`` at ``temperature``.

    Prompts are left-padded with position ids counted from each row's first real token (as generation
    numbers them); rows with the same prompt share its forward pass (:mod:`.fastpath`), and the LM head
    runs on the completion positions only.
    """
    from .fastpath import eligible, hidden_states

    device = next(model.parameters()).device
    shared = eligible(model)
    out: list[dict[str, np.ndarray]] = []
    for start in range(0, len(completion_ids), STATS_BATCH):
        prompts = [list(p) for p in prompt_ids[start : start + STATS_BATCH]]
        completions = [list(c) for c in completion_ids[start : start + STATS_BATCH]]
        p_width, c_width = max(map(len, prompts)), max(1, max(map(len, completions)))
        input_ids = torch.full((len(prompts), p_width + c_width), pad_token_id, dtype=torch.long)
        attention = torch.zeros_like(input_ids)
        sampled = torch.zeros((len(prompts), c_width), dtype=torch.long)
        response = torch.zeros((len(prompts), c_width), dtype=torch.bool)
        for row, (p, c) in enumerate(zip(prompts, completions)):
            input_ids[row, p_width - len(p) : p_width] = torch.tensor(p, dtype=torch.long)
            attention[row, p_width - len(p) : p_width] = 1
            input_ids[row, p_width : p_width + len(c)] = torch.tensor(c, dtype=torch.long)
            attention[row, p_width : p_width + len(c)] = 1
            sampled[row, : len(c)] = torch.tensor(c, dtype=torch.long)
            response[row, : len(c)] = True
        positions = (attention.cumsum(-1) - 1).clamp(min=0)
        input_ids, attention, positions = input_ids.to(device), attention.to(device), positions.to(device)
        with torch.no_grad():
            if shared:
                hidden = hidden_states(model.base_model, input_ids, attention, c_width, position_ids=positions)
                logits: Any = _HeadLogits(model.get_output_embeddings(), hidden)
            else:
                full = model(input_ids=input_ids, attention_mask=attention, position_ids=positions).logits
                logits = full[:, p_width - 1 : -1]
            out.extend(response_token_stats(logits, response, tokens=sampled.to(device), temperature=temperature))
        del logits
    return out


@dataclass
class StepRecord:
    """What the estimator returned at one generation step (for the summary and for tests)."""

    step: int
    trainer_rewards: list[float | None]
    estimator_rewards: list[float]
    groups: list[dict[str, Any]]
    metrics: dict[str, float]
    #: This process's completion token ids, in batch order (what the token statistics were computed on).
    completion_ids: list[list[int]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Item:
    """One completion of the batch with its prompt's columns: what the processes exchange."""

    group_id: str
    prompt: str
    task: str
    #: The hidden reference answer, for metrics only: it never reaches the estimator.
    reference: str | None
    response: Response


@dataclass
class EstimatorReward:
    """A GRPOTrainer reward function: each call scores whole prompt groups through the group layer.

    ``bind(trainer)`` must be called after the trainer is built when the estimator needs token
    statistics (the policy and tokenizer come from it). Completions outside a group's trained subset,
    and every completion of a filtered or unscoreable group, get ``None``: TRL leaves them out of the
    group's baseline and gives them advantage 0.
    """

    groups: GroupEstimator
    temperature: float
    history: list[StepRecord] = field(default_factory=list)
    trainer: Any = None
    __name__: str = "ttrl"

    def __post_init__(self) -> None:
        self.__name__ = f"ttrl_{self.groups.pipeline.estimator.name}"

    @property
    def needs_stats(self) -> bool:
        return bool(self.groups.stats_needed)

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
            _Item(g, p, t, r, Response(text=c, token_stats=a, num_tokens=len(ids)))
            for g, p, c, a, t, r, ids in zip(group_id, prompts, completions, arrays, task, references, completion_ids, strict=True)
        ]
        everything, offset = gather_items(local)
        results = self.groups.estimate_batch(
            [item.group_id for item in everything], [item.prompt for item in everything],
            [item.response for item in everything],
            references=[item.reference for item in everything], tasks=[item.task for item in everything],
        )
        trainer_rewards = [r for result in results for r in result.trainer_rewards()]
        self._record(results, self.groups.step_metrics(), trainer_state, log_metric)
        self.history[-1].completion_ids = completion_ids
        return trainer_rewards[offset : offset + len(local)]

    def _record(self, results: list[GroupResult], metrics: dict[str, float], trainer_state: Any, log_metric: Any) -> None:
        # unscoreable groups are reported (and counted in failed_groups) by the group layer itself
        step = int(getattr(trainer_state, "global_step", len(self.history)))
        self.history.append(
            StepRecord(
                step=step,
                trainer_rewards=[r for result in results for r in result.trainer_rewards()],
                estimator_rewards=[r for result in results for r in result.rewards],
                groups=[result.summary() for result in results],
                metrics=dict(metrics),
            )
        )
        if log_metric is not None:
            for name, value in metrics.items():
                log_metric(f"ttrl/{name}", float(value))


def gather_items(local: list[_Item]) -> tuple[list[_Item], int]:
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

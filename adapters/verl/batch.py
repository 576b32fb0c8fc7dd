"""verl glue on one training batch: a ``DataProto`` in, per-response rewards and the train mask out.

This module is the whole difference between verl's per-sample reward path and group-level
estimation. It reads a batch as verl's trainer holds it after the actor's log-prob pass
(``responses``, ``response_mask``, ``uid``, ``entropy``, ``old_log_probs``, the dataset's
``reward_model.ground_truth``), hands every prompt group (same ``uid``) to ttrl's group layer, and
writes back what verl's advantage code consumes:

- ``token_level_scores``: each response's reward at *its own* last valid token (TTRL's verl fork
  writes a whole group's rewards at the last token of the group's last response);
- a train mask: the ``n_train`` responses the layer keeps; the others (and every response of a
  group the layer filtered or could not score) get an all-zero ``response_mask``, so they add no
  loss and no tokens to verl's token-mean, and :func:`ttrl_grpo_advantage` leaves them out of the
  group mean and standard deviation.

Nothing here depends on the order of the batch: verl balances sequence lengths across data-parallel
ranks (``_balance_batch``) and shuffles mini-batches, so groups are found by ``uid`` and, within a
group, ordered by the sample index verl puts in its keys (``{uid}_{sample}_{output}``) when given.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ttrl.core.data import TOKEN_FIELDS
from ttrl.core.groups import GroupEstimator, GroupResult, Response

from .logit_stats import FIELDS as LOGIT_STATS_FIELDS

#: Token statistics verl's own log-prob pass provides (at the rollout temperature): ttrl's per-token
#: array name -> verl's batch field; self-certainty and token confidence come from ttrl's patch of
#: that pass (:mod:`.logit_stats`). Their means (``stats.mean_*``) are computed by the group layer.
VERL_TOKEN_STATS = {"token_entropy": "entropy", "token_logprob": "old_log_probs", **LOGIT_STATS_FIELDS}
_MEAN_TO_TOKEN = {mean: token for token, mean in TOKEN_FIELDS.items()}
ADVANTAGE_ESTIMATOR = "ttrl_grpo"
METRIC_PREFIX = "ttrl/"


@dataclass(slots=True)
class BatchScores:
    """What :func:`score_batch` decided for one verl batch."""

    token_level_scores: torch.Tensor  # (batch, response_len) float32: reward at each response's last token
    train_mask: torch.Tensor  # (batch,) bool: responses verl trains on
    results: dict[str, GroupResult]  # by uid


def sample_order(keys: Sequence[str] | None, size: int) -> list[tuple]:
    """Sort keys putting each prompt's responses in sampling order: verl's V1 keys are
    ``{uid}_{sample}_{output}``; without keys the batch order is the sampling order."""
    if keys is None:
        return [(i,) for i in range(size)]
    order = []
    for i, key in enumerate(keys):
        parts = str(key).rsplit("_", 2)
        order.append((int(parts[1]), int(parts[2]), i) if len(parts) == 3 and parts[1].isdigit() else (i,))
    return order


def token_arrays(needed: frozenset[str]) -> frozenset[str]:
    """The per-token arrays behind the statistics an estimator needs (``mean_entropy`` -> ``token_entropy``);
    ``num_tokens`` comes with every response."""
    return frozenset(_MEAN_TO_TOKEN.get(name, name) for name in needed if name != "num_tokens")


def verl_fields(needed: frozenset[str]) -> list[str]:
    """verl batch fields to read for those statistics; a ``KeyError`` names any verl does not compute."""
    arrays = token_arrays(needed)
    unknown = arrays - set(VERL_TOKEN_STATS)
    if unknown:
        raise KeyError(f"verl's log-prob pass does not compute {sorted(unknown)}")
    return sorted(VERL_TOKEN_STATS[name] for name in arrays)


def response_arrays(data: Any, row: int, length: int, arrays: frozenset[str]) -> dict[str, np.ndarray] | None:
    """The per-token statistics of one response (generated tokens only), as float64 arrays."""
    if not arrays:
        return None
    return {
        name: data.batch[VERL_TOKEN_STATS[name]][row, :length].detach().to(torch.float64).cpu().numpy()
        for name in arrays
    }


def _ground_truth(data: Any, row: int) -> str | None:
    info = data.non_tensor_batch.get("reward_model")
    if info is None:
        return None
    value = info[row].get("ground_truth") if isinstance(info[row], dict) else None
    return None if value is None else str(value)


def score_batch(
    data: Any,
    estimator: GroupEstimator,
    decode,
    *,
    keys: Sequence[str] | None = None,
    padding: Sequence[bool] | None = None,
    prompt_of: Callable[[int], str] | None = None,
) -> BatchScores:
    """Run the group layer on every ``uid`` group of a verl ``DataProto``.

    ``decode(token_ids) -> str`` turns a response's valid tokens into text (the tokenizer's
    ``decode(..., skip_special_tokens=True)``); ``padding[i]`` marks rows verl added to make the
    batch divisible (they belong to no prompt and are never trained on); ``prompt_of(row)`` gives
    the prompt's text (decoded once per group).
    """
    responses = data.batch["responses"]
    mask = data.batch["response_mask"]
    lengths = mask.sum(dim=-1).to(torch.long)
    uids = data.non_tensor_batch["uid"]
    arrays = token_arrays(estimator.stats_needed)
    missing = set(verl_fields(estimator.stats_needed)) - set(data.batch.keys())
    if missing:
        hint = ""
        if missing & set(LOGIT_STATS_FIELDS.values()):
            hint = " (ttrl's patch of verl's log-prob pass did not run: see docs/verl.md, Token statistics)"
        raise KeyError(f"the estimator needs {sorted(arrays)}, but verl's batch has no {sorted(missing)}{hint}")
    # each prompt's responses together, in sampling order: the layer takes consecutive groups
    order = sample_order(keys, len(uids))
    first_seen: dict[str, int] = {}
    for row in range(len(uids)):
        first_seen.setdefault(str(uids[row]), row)
    rows = sorted(
        (row for row in range(len(uids)) if padding is None or not padding[row]),
        key=lambda i: (first_seen[str(uids[i])], order[i]),
    )
    group_ids = [str(uids[row]) for row in rows]
    responses_in = [
        Response(
            text=decode(responses[row, : int(lengths[row])]),
            token_stats=response_arrays(data, row, int(lengths[row]), arrays),
            num_tokens=int(lengths[row]),
        )
        for row in rows
    ]
    prompts = _PerRow(len(rows), (lambda i: prompt_of(rows[i])) if prompt_of is not None else (lambda i: ""))
    references = _PerRow(len(rows), lambda i: _ground_truth(data, rows[i]))
    outcome = estimator.estimate_batch(group_ids, prompts, responses_in, references=references)

    scores = torch.zeros_like(responses, dtype=torch.float32)
    train = torch.zeros(len(uids), dtype=torch.bool)
    results: dict[str, GroupResult] = {}
    for k, result in enumerate(outcome):
        block = rows[k * estimator.n_votes : (k + 1) * estimator.n_votes]
        results[group_ids[k * estimator.n_votes]] = result
        for position in result.train_indices:
            row = block[position]
            reward = result.rewards[position]
            if int(lengths[row]) > 0 and math.isfinite(reward):
                scores[row, int(lengths[row]) - 1] = reward
                train[row] = True
    return BatchScores(scores, train, results)


class _PerRow(Sequence):
    """A per-row value computed on demand: the layer reads one per group (its first response)."""

    def __init__(self, size: int, get: Callable[[int], Any]):
        self._size, self._get = size, get

    def __len__(self) -> int:
        return self._size

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self._get(i) for i in range(*index.indices(self._size))]
        return self._get(index)


def step_metrics(estimator: GroupEstimator) -> dict[str, float]:
    """The layer's step metrics under ``ttrl/`` for verl's logger (console, wandb, tensorboard)."""
    return {f"{METRIC_PREFIX}{name}": value for name, value in estimator.step_metrics().items()}


_SCORING = {"active": False}


@contextmanager
def scored_by_ttrl():
    """Marks the advantage computation that follows as fed by :func:`score_batch`.

    :func:`ttrl_grpo_advantage` refuses to run outside it: with ttrl's advantage estimator but not
    ttrl's trainer, the rewards would be verl's per-sample scores, graded against the dataset's
    labels, and a "label-free" run would silently train on ground truth.
    """
    _SCORING["active"] = True
    try:
        yield
    finally:
        _SCORING["active"] = False


def ttrl_grpo_advantage(
    token_level_rewards: torch.Tensor,
    response_mask: torch.Tensor,
    index: np.ndarray,
    config: Any = None,
    epsilon: float = 1e-6,
    **_: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """GRPO's group-normalised outcome advantage over the *trained* responses of each ``uid``.

    A_i = (r_i − mean_j r_j) / (std_j r_j + ε) over the responses j of i's group with a non-empty
    ``response_mask`` (verl's ``grpo`` takes every response of the uid). Unbiased std and ε = 1e-6
    as in verl's ``compute_grpo_outcome_advantage``, so with every response trained both agree;
    ``algorithm.norm_adv_by_std_in_grpo: false`` drops the division (Dr. GRPO).
    """
    if not _SCORING["active"]:
        raise RuntimeError(
            f"verl called ttrl's advantage estimator {ADVANTAGE_ESTIMATOR!r} without ttrl's trainer: its rewards "
            "would be verl's per-sample scores, graded against the dataset's labels. Start training with "
            "`ttrl train` or set trainer.v1.trainer_mode=ttrl (see docs/verl.md)."
        )
    norm_by_std = True if config is None else bool(config.get("norm_adv_by_std_in_grpo", True))
    scores = token_level_rewards.sum(dim=-1)
    trained = response_mask.sum(dim=-1) > 0
    advantages = torch.zeros_like(scores)
    with torch.no_grad():
        members: dict[Any, list[int]] = {}
        for i in range(len(scores)):
            if trained[i]:
                members.setdefault(index[i], []).append(i)
        for rows in members.values():
            values = scores[rows]
            if len(rows) < 2:
                continue  # one trained response: no baseline, no signal
            centred = values - values.mean()
            advantages[rows] = centred / (values.std() + epsilon) if norm_by_std else centred
    advantages = advantages.unsqueeze(-1) * response_mask
    return advantages, advantages


def register_advantage_estimator() -> None:
    """Register :func:`ttrl_grpo_advantage` in verl's advantage-estimator registry (idempotent)."""
    from verl.trainer.ppo import core_algos

    if core_algos.ADV_ESTIMATOR_REGISTRY.get(ADVANTAGE_ESTIMATOR) is not ttrl_grpo_advantage:
        core_algos.register_adv_est(ADVANTAGE_ESTIMATOR)(ttrl_grpo_advantage)


def apply_train_mask(data: Any, scores: BatchScores) -> None:
    """Write the rewards and the train mask into a padded ``DataProto`` (in place)."""
    keep = scores.train_mask.to(data.batch["response_mask"].dtype).unsqueeze(-1)
    data.batch["token_level_scores"] = scores.token_level_scores
    data.batch["response_mask"] = data.batch["response_mask"] * keep
    if "loss_mask" in data.batch.keys():
        data.batch["loss_mask"] = data.batch["loss_mask"] * keep.to(data.batch["loss_mask"].dtype)

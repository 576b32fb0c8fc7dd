"""DARE (Du, Huang, Li, "Distribution-Aware Reward Estimation for Test-Time Reinforcement Learning",
arXiv:2601.21804, 2026).

Instead of rewarding only the majority answer, every answer ŷ gets a share of an uncertainty-weighted
empirical distribution over the group's answers, plus an exploration bonus for rare, confident answers:

    n(ŷ)   = number of rollouts whose answer is ŷ (answer equivalence classes)
    u(ŷ)   = mean over those rollouts of their mean token entropy (nats)
    p̂(ŷ)   ∝ n(ŷ) / (u(ŷ) + ε)                      normalised over the group's answers
    b(ŷ)   = (1 − n(ŷ)/M) · (1 − ũ(ŷ))               M = N, all rollouts of the group
    r_i    = p̂(ŷ_i) + α · b(ŷ_i)

Pruning: answers with p̂ < τ are dropped, p̂ is renormalised over the rest and rewards are recomputed.
Pruned answers and rollouts without an answer get 0. The label is the answer with the largest p̂.

ũ is u after ``uncertainty_normalization``; it applies to the bonus only, p̂ always uses u in nats.
The paper states no normalisation, yet 1 − u < 0 whenever u > 1 nat, which would turn the bonus into
a penalty. The default ``clamp`` (ũ = min(u, 1)) is the paper's formula whenever u ≤ 1 nat, needs no
vocabulary size, and keeps the bonus in [0, 1 − n/M]. ``log_vocab`` (ũ = u / log|V| ∈ [0, 1]) is the
principled alternative when |V| is known; ``none`` is the literal formula.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ttrl.core.data import Estimate, RolloutGroup
from ttrl.core.errors import EstimatorInputError
from ttrl.core.hookspecs import hookimpl


class DareOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    alpha: float = Field(0.5, ge=0.0, description="Weight α of the exploration bonus.")
    tau: float = Field(0.05, ge=0.0, le=1.0, description="Pruning threshold τ: answers with p̂ < τ get reward 0.")
    epsilon: float = Field(1e-6, gt=0.0, description="ε in p̂ ∝ n/(u + ε); guards against u = 0 only.")
    uncertainty_normalization: Literal["clamp", "log_vocab", "none"] = Field(
        "clamp",
        description="How u enters the bonus (1 − u): clamp to [0, 1] (default), divide by log|V|, or none "
        "(the bonus turns negative when u > 1 nat).",
    )
    vocab_size: int | None = Field(
        None, ge=2, description="|V| for uncertainty_normalization=log_vocab; default: the rollout file's meta.vocab_size."
    )


def normalized_uncertainty(u: np.ndarray, group: RolloutGroup, options: DareOptions) -> np.ndarray:
    if options.uncertainty_normalization == "none":
        return u
    if options.uncertainty_normalization == "clamp":
        return np.clip(u, 0.0, 1.0)
    vocab_size = options.vocab_size or group.meta.get("vocab_size")
    if not isinstance(vocab_size, int) or vocab_size < 2:
        raise EstimatorInputError(
            f"Estimator 'dare' with uncertainty_normalization=log_vocab needs the vocabulary size for group "
            f"{group.id!r}: set the option vocab_size (e.g. --option vocab_size=49152) or meta.vocab_size in "
            "the rollout file."
        )
    return u / math.log(vocab_size)


def estimate_dare(group: RolloutGroup, options: DareOptions) -> Estimate:
    """Uncertainty-weighted answer distribution plus an exploration bonus, with pruning (DARE)."""
    classes = group.classes
    ids = np.asarray(classes.class_ids, dtype=np.int64)
    rewards = np.zeros(len(ids))
    answered = np.flatnonzero(ids >= 0)
    if classes.num_classes == 0:
        return Estimate(rewards.tolist(), None, {"reason": "no rollout has an extractable answer"})
    entropy = np.array([group.rollouts[i].stat("mean_entropy") for i in answered], dtype=np.float64)
    counts = np.bincount(ids[answered], minlength=classes.num_classes).astype(np.float64)
    u = np.bincount(ids[answered], weights=entropy, minlength=classes.num_classes) / counts
    weight = counts / (u + options.epsilon)
    p_hat = weight / weight.sum()
    kept = p_hat >= options.tau
    diagnostics = {
        "answers": list(classes.representatives),
        "counts": counts.astype(int).tolist(),
        "uncertainty": u.tolist(),
        "p_hat": p_hat.tolist(),
        "pruned": [rep for rep, keep in zip(classes.representatives, kept) if not keep],
    }
    if not kept.any():
        diagnostics["reason"] = f"every answer has p̂ below tau={options.tau}"
        return Estimate(rewards.tolist(), None, diagnostics)
    p_kept = np.where(kept, p_hat, 0.0)
    p_kept /= p_kept.sum()
    bonus = (1.0 - counts / len(ids)) * (1.0 - normalized_uncertainty(u, group, options))
    class_reward = np.where(kept, p_kept + options.alpha * bonus, 0.0)
    rewards[answered] = class_reward[ids[answered]]
    diagnostics.update(p_hat_pruned=p_kept.tolist(), bonus=bonus.tolist())
    # argmax returns the first maximum: ties go to the answer seen first, as in majority_vote
    label = classes.representatives[int(np.argmax(p_hat))]
    return Estimate(rewards.tolist(), label, diagnostics)


@hookimpl
def register_estimators(register):
    register("dare", estimate_dare, options=DareOptions, requires=("answers", "mean_entropy"))

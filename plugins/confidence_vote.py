"""Confidence-weighted vote (DeepConf; Fu, Wang, Tian, Zhao, "Deep Think with Confidence",
arXiv:2508.15260, 2025).

Token confidence is the negative mean log-probability of the k most likely tokens at each step,
``C_t = −(1/k) Σ_{j ∈ top-k} log p_t(j)`` (``token_confidence``, k in ``meta.confidence_k``): high when
the distribution is peaked. A trace's confidence c_i summarises its C_t:

    mean            (1/T) Σ_t C_t
    tail            mean of the last ``tail_tokens`` C_t
    bottom_window   mean of the lowest ``bottom_fraction`` of the sliding-window means
                    (window of ``window`` tokens, stride 1)
    lowest_window   the lowest sliding-window mean

(a trace shorter than one window uses its mean). Among the rollouts with an answer, only those with
c_i ≥ the (1 − η) quantile of c are kept (top-η filtering; η = 1 keeps all), and they vote with
weight c_i:

    ŷ = argmax_y Σ_{kept i: ŷ_i ≡ y} c_i,        r_i = 1[ŷ_i ≡ ŷ]

Every rollout is rewarded for agreeing with ŷ, kept or not; rollouts without an answer get 0.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ttrl.core.data import Estimate, Rollout, RolloutGroup
from ttrl.core.hookspecs import hookimpl


class ConfidenceVoteOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    trace_confidence: Literal["mean", "tail", "bottom_window", "lowest_window"] = Field(
        "bottom_window",
        description="How a trace's token confidences are summarised (mean needs only stats.mean_confidence).",
    )
    window: int = Field(2048, ge=1, description="Sliding-window length in tokens (DeepConf: 2048).")
    tail_tokens: int = Field(2048, ge=1, description="Tokens at the end of the trace for trace_confidence=tail (DeepConf: 2048).")
    bottom_fraction: float = Field(
        0.1, gt=0.0, le=1.0, description="Fraction of lowest window means averaged for bottom_window (DeepConf: 0.1)."
    )
    keep_top: float = Field(
        0.1, gt=0.0, le=1.0,
        description="η: keep the answered traces whose confidence is at least the (1 − η) quantile "
        "(DeepConf-low: 0.1, DeepConf-high: 0.9; 1 keeps all).",
    )


def required_inputs(options: ConfidenceVoteOptions) -> tuple[str, ...]:
    return ("answers", "mean_confidence" if options.trace_confidence == "mean" else "token_confidence")


def window_means(values: np.ndarray, window: int) -> np.ndarray:
    """Means of every ``window`` consecutive values (stride 1); the overall mean when there are fewer."""
    if len(values) < window:
        return np.array([values.mean()])
    sums = np.cumsum(np.concatenate([[0.0], values]))
    return (sums[window:] - sums[:-window]) / window


def trace_confidence(rollout: Rollout, options: ConfidenceVoteOptions) -> float:
    """The trace's confidence c_i; 0 for a trace without tokens (as in DeepConf's code)."""
    if options.trace_confidence == "mean":
        return rollout.stat("mean_confidence")
    values = np.asarray(rollout.token_confidence, dtype=np.float64)
    if len(values) == 0:
        return 0.0
    if options.trace_confidence == "tail":
        return float(values[-options.tail_tokens :].mean())
    means = window_means(values, options.window)
    if options.trace_confidence == "lowest_window":
        return float(means.min())
    lowest = max(1, int(len(means) * options.bottom_fraction))
    return float(np.sort(means)[:lowest].mean())


def estimate_confidence_vote(group: RolloutGroup, options: ConfidenceVoteOptions) -> Estimate:
    """Reward agreement with the confidence-weighted vote of the most confident traces (DeepConf)."""
    classes = group.classes
    ids = np.asarray(classes.class_ids, dtype=np.int64)
    n = len(ids)
    answered = np.flatnonzero(ids >= 0)
    if answered.size == 0:
        return Estimate([0.0] * n, None, {"reason": "no rollout has an extractable answer"})
    confidence = np.array([trace_confidence(group.rollouts[i], options) for i in answered])
    threshold = float(np.percentile(confidence, (1.0 - options.keep_top) * 100.0))
    keep = confidence >= threshold
    kept = answered[keep]
    weights = np.bincount(ids[kept], weights=confidence[keep], minlength=classes.num_classes)
    # argmax takes the first maximum: ties go to the answer seen first, as in majority_vote
    winner = int(np.argmax(weights))
    rewards = (ids == winner).astype(np.float64)
    per_rollout: list[float | None] = [None] * n
    for i, c in zip(answered.tolist(), confidence.tolist()):
        per_rollout[i] = c
    diagnostics = {
        "trace_confidence": per_rollout,
        "threshold": threshold,
        "kept": kept.tolist(),
        "answers": list(classes.representatives),
        "weights": weights.tolist(),
    }
    return Estimate(rewards.tolist(), classes.representatives[winner], diagnostics)


@hookimpl
def register_estimators(register):
    register(
        "confidence_vote",
        estimate_confidence_vote,
        options=ConfidenceVoteOptions,
        aliases=("deepconf",),
        requires=required_inputs,
    )

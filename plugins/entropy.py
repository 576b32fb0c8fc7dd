"""Entropy minimisation as a reward: RENT (Prabhudesai et al., "Maximizing Confidence Alone Improves
Reasoning", arXiv:2505.22660, 2025) and EM-RL (Agarwal et al., "The Unreasonable Effectiveness of Entropy
Minimization in LLM Reasoning", arXiv:2505.15134, 2025).

``variant="token"`` (RENT, EM-RL-token) rewards low full-vocabulary entropy of the sampling distribution:

    r_i = −(1/|S_i|) Σ_{t ∈ S_i} H_t,      H_t = −Σ_j p_t(j) log p_t(j)

``variant="sequence"`` (EM-RL-sequence) uses the sampled tokens' log-probabilities instead, a Monte-Carlo
estimate of the negative sequence entropy, per token so that long responses are not penalised for length:

    r_i = (1/|S_i|) Σ_{t ∈ S_i} log p_t(y_t)

S_i is every response token (``scope="all"``) or the last ``last_k`` of them (``scope="last_k"``: RENT
finds the confidence of the response's last chunk, where the answer is stated, tracks accuracy best). RENT's code optionally gives a
fixed reward to responses with no extractable answer (−7.0 there): ``no_answer_penalty``.

``trajectory_entropy`` is URLVR's trajectory-level entropy reward (He et al., "How Far Can
Unsupervised RLVR Scale LLM Training?", arXiv:2603.08660, 2026), the same quantity as
``variant="sequence"``: it is registered as this estimator with that default. URLVR's token-level
entropy reward is the default ``variant="token"``.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ttrl.core.data import Estimate, Rollout, RolloutGroup
from ttrl.core.errors import EstimatorInputError
from ttrl.core.hookspecs import hookimpl

#: (variant, scope) -> the input each combination reads: a ``stats`` mean or a per-token array.
INPUTS = {
    ("token", "all"): "mean_entropy",
    ("token", "last_k"): "token_entropy",
    ("sequence", "all"): "mean_logprob",
    ("sequence", "last_k"): "token_logprob",
}


class EntropyOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    variant: Literal["token", "sequence"] = Field(
        "token", description="token: full-vocabulary entropy (RENT); sequence: log-prob of the sampled tokens (EM-RL-sequence)."
    )
    scope: Literal["all", "last_k"] = Field(
        "all", description="Average over all response tokens, or over the last `last_k` (needs per-token arrays)."
    )
    last_k: int = Field(32, ge=1, description="Number of final tokens for scope=last_k.")
    no_answer_penalty: float | None = Field(
        None, description="Reward for rollouts without an extractable answer (RENT's code: -7.0); None: no penalty."
    )


def required_inputs(options: EntropyOptions) -> tuple[str, ...]:
    needs = (INPUTS[options.variant, options.scope],)
    return needs + ("answers",) if options.no_answer_penalty is not None else needs


def confidence(rollout: Rollout, field: str, last_k: int, group_id: str, index: int) -> float:
    """Mean of ``field`` over the scored tokens, negated for entropies (higher is more confident)."""
    sign = -1.0 if "entropy" in field else 1.0
    if field.startswith("mean_"):
        return sign * rollout.stat(field)
    values = getattr(rollout, field)
    if len(values) == 0:
        raise EstimatorInputError(
            f"Group {group_id!r}, rollout {index}: {field} is empty, so estimator 'entropy' has no tokens to "
            "score. Drop empty responses or use scope=all with stats."
        )
    return sign * float(np.mean(values[-last_k:]))


def estimate_entropy(group: RolloutGroup, options: EntropyOptions) -> Estimate:
    """Negative mean token entropy (RENT, EM-RL-token) or mean sampled log-prob (EM-RL-sequence)."""
    field = INPUTS[options.variant, options.scope]
    rewards = [confidence(r, field, options.last_k, group.id, i) for i, r in enumerate(group.rollouts)]
    diagnostics = {"input": field}
    if options.no_answer_penalty is not None:
        missing = [i for i, k in enumerate(group.classes.class_ids) if k < 0]
        for i in missing:
            rewards[i] = options.no_answer_penalty
        diagnostics["penalised"] = missing
    return Estimate(rewards, None, diagnostics)


@hookimpl
def register_estimators(register):
    register(
        "entropy",
        estimate_entropy,
        options=EntropyOptions,
        aliases=("rent", "em_rl"),
        requires=required_inputs,
    )
    register(
        "trajectory_entropy",
        estimate_entropy,
        options=EntropyOptions,
        defaults={"variant": "sequence"},
        requires=required_inputs,
        description="URLVR's trajectory-level entropy: entropy with variant=sequence (mean sampled log-prob).",
    )

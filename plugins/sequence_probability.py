"""Sequence probability (URLVR; He et al., "How Far Can Unsupervised RLVR Scale LLM Training?",
arXiv:2603.08660, 2026): the probability of the whole sampled response under the sampling distribution,

    r_i = exp(Σ_{t=1}^{T_i} log p_t(y_t)) = exp(T_i · mean_logprob_i)

Unlike the length-normalised ``trajectory_entropy`` (the mean log-prob), this is a product over
tokens: every token multiplies it by a p_t(y_t) ≤ 1, so it falls geometrically with length (a
response twice as long with the same per-token log-prob gets the square of the reward) and favours
short responses; past a few hundred tokens it underflows to 0 for any realistic model, which ties
those rollouts. ``log: true`` gives Σ_t log p_t(y_t) instead: the same order, no underflow, still
length-penalised.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field

from ttrl.core.data import Estimate, RolloutGroup
from ttrl.core.hookspecs import hookimpl


class SequenceProbabilityOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    log: bool = Field(False, description="Reward the summed log-prob instead of its exp (same order, no underflow).")


def estimate_sequence_probability(group: RolloutGroup, options: SequenceProbabilityOptions) -> Estimate:
    """Probability of the whole response, exp of its summed token log-probs (URLVR)."""
    totals = [r.stat("num_tokens") * r.stat("mean_logprob") for r in group.rollouts]
    rewards = totals if options.log else [math.exp(t) for t in totals]
    return Estimate(rewards, None, {"log_probability": totals})


@hookimpl
def register_estimators(register):
    register(
        "sequence_probability",
        estimate_sequence_probability,
        options=SequenceProbabilityOptions,
        aliases=("probability",),
        requires=("num_tokens", "mean_logprob"),
    )

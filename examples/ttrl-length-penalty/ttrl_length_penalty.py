"""A reward shaper that subtracts a penalty for responses longer than a budget.

r'_i = r_i − coef · max(0, len_i − budget) / budget, where len_i is ``stats.num_tokens`` when the
rollout has it and the number of whitespace-separated words otherwise.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

import ttrl


class LengthPenaltyOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    budget: int = Field(default=512, gt=0, description="Length (tokens, or words) that costs nothing.")
    coef: float = Field(default=0.1, ge=0.0, description="Penalty per budget-length of excess.")


def _length(rollout: ttrl.Rollout) -> float:
    tokens = rollout.stat("num_tokens")
    return tokens if tokens is not None else float(len(rollout.text.split()))


def shape_length_penalty(group: ttrl.RolloutGroup, estimate: ttrl.Estimate, options: LengthPenaltyOptions) -> ttrl.Estimate:
    """Subtract coef * excess/budget from each reward."""
    penalties = [options.coef * max(0.0, _length(r) - options.budget) / options.budget for r in group.rollouts]
    return ttrl.Estimate(
        rewards=[r - p for r, p in zip(estimate.rewards, penalties)],
        label=estimate.label,
        diagnostics={**estimate.diagnostics, "length_penalty": penalties},
        train_indices=estimate.train_indices,
    )


@ttrl.hookimpl
def register_reward_shapers(register):
    register("length_penalty", shape_length_penalty, options=LengthPenaltyOptions)

"""Majority vote (TTRL; Zuo et al., "TTRL: Test-Time Reinforcement Learning", NeurIPS 2025).

The pseudo-label is the largest answer class; reward r_i = 1 if rollout i's answer is in that class, else 0.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from ttrl.core.data import Estimate, RolloutGroup
from ttrl.core.hookspecs import hookimpl


class MajorityVoteOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")


def estimate_majority_vote(group: RolloutGroup, options: MajorityVoteOptions) -> Estimate:
    """Reward 1 for rollouts that agree with the most frequent answer, 0 otherwise (TTRL)."""
    classes = group.classes
    sizes = classes.sizes()
    if not sizes:
        return Estimate(rewards=[0.0] * len(group.rollouts), label=None, diagnostics={"reason": "no answers"})
    # ties: the class seen first wins (classes are numbered in order of first appearance)
    winner = max(range(len(sizes)), key=lambda k: (sizes[k], -k))
    rewards = [1.0 if c == winner else 0.0 for c in classes.class_ids]
    return Estimate(
        rewards=rewards,
        label=classes.representatives[winner],
        diagnostics={"majority_ratio": sizes[winner] / len(group.rollouts), "num_classes": len(sizes)},
    )


@hookimpl
def register_estimators(register):
    register(
        "majority_vote",
        estimate_majority_vote,
        options=MajorityVoteOptions,
        aliases=("ttrl", "majority"),
        requires=("answers",),
    )

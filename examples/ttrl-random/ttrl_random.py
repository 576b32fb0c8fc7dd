"""A random-reward baseline estimator: what any estimator should beat in ``ttrl bench``.

Rewards are drawn independently of the rollouts' content, from a generator seeded by the ``seed``
option and the group id, so a run is reproducible and its pairwise accuracy is 0.5 in expectation.
"""

from __future__ import annotations

import hashlib
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

import ttrl


class RandomOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seed: int = Field(default=0, description="Seed mixed with the group id.")
    distribution: Literal["bernoulli", "uniform"] = Field(
        default="bernoulli", description="bernoulli: rewards 0/1 with probability p; uniform: rewards in [0, 1)."
    )
    p: float = Field(default=0.5, ge=0.0, le=1.0, description="Probability of reward 1 (bernoulli).")


def _rng(group_id: str, seed: int) -> np.random.Generator:
    digest = hashlib.sha256(f"{seed}:{group_id}".encode("utf-8", "surrogatepass")).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def estimate_random(group: ttrl.RolloutGroup, options: RandomOptions) -> ttrl.Estimate:
    """Random rewards that ignore the rollouts (a baseline)."""
    rng = _rng(group.id, options.seed)
    n = len(group.rollouts)
    if options.distribution == "bernoulli":
        rewards = (rng.random(n) < options.p).astype(float)
    else:
        rewards = rng.random(n)
    return ttrl.Estimate(rewards=rewards.tolist(), label=None, diagnostics={"distribution": options.distribution})


@ttrl.hookimpl
def register_estimators(register):
    register("random", estimate_random, options=RandomOptions, aliases=("random_baseline",))

"""Spurious-reward controls (Shao et al., "Spurious Rewards: Rethinking Training Signals in RLVR",
arXiv:2506.10947, 2025): rewards that carry no information about correctness, the baselines a
label-free method has to beat.

``random_reward``: r_i ~ Bernoulli(γ), independently per rollout. The generator is seeded from
``seed`` and the group id (crc32, not Python's salted ``hash``), so a group gets the same rewards in
every run and on every machine, and different groups get different draws.

``format_reward``: r_i = 1 if the response states an answer in the expected form, else 0. With
``require: boxed`` (the paper's format reward) that is a non-empty ``\\boxed{...}``; with
``require: answer`` it is any answer the group's extractor finds (for ``math``, also "the answer is
X" or a last number).
"""

from __future__ import annotations

import zlib
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ttrl.core.answers.extract import last_boxed
from ttrl.core.data import Estimate, RolloutGroup
from ttrl.core.hookspecs import hookimpl


class RandomRewardOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    gamma: float = Field(0.5, ge=0.0, le=1.0, description="γ: probability that a rollout gets reward 1 (paper: 0.5).")
    seed: int = Field(0, ge=0, description="Seed; with the group id it fixes each group's draws.")


class FormatRewardOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    require: Literal["boxed", "answer"] = Field(
        "boxed", description="boxed: a non-empty \\boxed{} (the paper's); answer: whatever the task's extractor accepts."
    )


def estimate_random_reward(group: RolloutGroup, options: RandomRewardOptions) -> Estimate:
    """Bernoulli(γ) rewards from a generator seeded by the seed and the group id (spurious control)."""
    rng = np.random.default_rng([options.seed, zlib.crc32(group.id.encode("utf-8"))])
    rewards = (rng.random(len(group.rollouts)) < options.gamma).astype(np.float64)
    return Estimate(rewards.tolist(), None, {"gamma": options.gamma})


def format_inputs(options: FormatRewardOptions) -> tuple[str, ...]:
    return ("answers",) if options.require == "answer" else ()


def estimate_format_reward(group: RolloutGroup, options: FormatRewardOptions) -> Estimate:
    """1 for a response with a non-empty \\boxed{} answer (or any extractable one), else 0 (spurious control)."""
    if options.require == "answer":
        rewards = [1.0 if k >= 0 else 0.0 for k in group.classes.class_ids]
    else:
        rewards = [1.0 if last_boxed(r.text) is not None else 0.0 for r in group.rollouts]
    return Estimate(rewards, None, {"formatted": int(sum(rewards))})


@hookimpl
def register_estimators(register):
    register("random_reward", estimate_random_reward, options=RandomRewardOptions, aliases=("spurious_random",))
    register(
        "format_reward",
        estimate_format_reward,
        options=FormatRewardOptions,
        aliases=("spurious_format",),
        requires=format_inputs,
    )

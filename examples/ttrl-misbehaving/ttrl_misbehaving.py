"""An estimator that misbehaves on chosen groups, for ttrl's own tests of the group layer.

On a group whose prompt contains ``trigger`` it does what ``how`` says: raise an exception, call
``sys.exit``, return a string reward, out-of-range or duplicate ``train_indices``, a non-string label,
a NaN reward, or hang. On every other group it rewards alternate rollouts 1, 0, 1, 0, ...
"""

from __future__ import annotations

import sys
import time
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

import ttrl


class MisbehavingOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    how: Literal[
        "raise", "exit", "string_reward", "bad_indices", "duplicate_indices", "int_label", "nan_reward", "hang"
    ] = Field(default="raise", description="What to do on a triggered group.")
    trigger: str = Field(default="MISBEHAVE", description="Misbehave on groups whose prompt contains this.")
    hang_seconds: float = Field(default=30.0, description="How long `hang` busy-waits.")


def estimate_misbehaving(group: ttrl.RolloutGroup, options: MisbehavingOptions) -> ttrl.Estimate:
    """Alternating rewards, or a deliberate failure on triggered groups."""
    n = len(group.rollouts)
    rewards = [float(i % 2 == 0) for i in range(n)]
    if options.trigger not in group.prompt:
        return ttrl.Estimate(rewards=rewards)
    if options.how == "raise":
        raise ZeroDivisionError("deliberate failure")
    if options.how == "exit":
        sys.exit(3)
    if options.how == "string_reward":
        return ttrl.Estimate(rewards=["1.0"] + rewards[1:])
    if options.how == "bad_indices":
        return ttrl.Estimate(rewards=rewards, train_indices=[99, -1])
    if options.how == "duplicate_indices":
        return ttrl.Estimate(rewards=rewards, train_indices=[0, 0])
    if options.how == "int_label":
        return ttrl.Estimate(rewards=rewards, label=7)
    if options.how == "nan_reward":
        return ttrl.Estimate(rewards=[float("nan")] * n)
    end = time.monotonic() + options.hang_seconds
    while time.monotonic() < end:  # a pure-Python loop, as a runaway plugin would be
        time.sleep(0.01)
    return ttrl.Estimate(rewards=rewards)


@ttrl.hookimpl
def register_estimators(register):
    register("misbehaving", estimate_misbehaving, options=MisbehavingOptions)

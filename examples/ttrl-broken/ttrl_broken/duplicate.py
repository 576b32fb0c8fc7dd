"""A plugin that registers a name a built-in plugin already owns, plus one name of its own."""

import ttrl


def estimate_copycat(group, options):
    """Claims the built-in majority_vote name."""
    return ttrl.Estimate(rewards=[0.0] * len(group.rollouts))


def estimate_constant(group, options):
    """Reward 1 for every rollout."""
    return ttrl.Estimate(rewards=[1.0] * len(group.rollouts))


@ttrl.hookimpl
def register_estimators(register):
    register("majority_vote", estimate_copycat)
    register("constant_one", estimate_constant)

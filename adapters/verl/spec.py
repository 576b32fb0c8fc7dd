"""What verl's processes need to rebuild the estimator: the ``ttrl:`` section of the verl config.

``ttrl train`` writes it into the generated verl config; verl hands the whole config to the trainer
in its Ray task-runner process, which rebuilds the same :class:`~ttrl.core.groups.GroupEstimator`
(estimator, options, shapers, answer settings, group failure policy, n_votes, n_train).
"""

from __future__ import annotations

from typing import Any

from ttrl.core.config import RunConfig

TRAINER_MODE = "ttrl"
SECTION = "verl"


def estimation_spec(config: RunConfig, *, n_votes: int, n_train: int) -> dict[str, Any]:
    """JSON-ready: the run config's estimation part plus the group sizes."""
    run = config.model_dump(mode="json", include={"estimator", "reward_shaping", "answers", "groups"})
    return {"run": run, "n_votes": n_votes, "n_train": n_train}


def build_estimator(spec: Any):
    """The :class:`GroupEstimator` a spec describes (``spec`` may be an OmegaConf node)."""
    from omegaconf import DictConfig, OmegaConf

    from ttrl.core.groups import GroupEstimator
    from ttrl.core.plugins import default_plugins

    if isinstance(spec, DictConfig):
        spec = OmegaConf.to_container(spec, resolve=True)
    config = RunConfig.model_validate(spec["run"])
    return GroupEstimator.from_config(
        config, default_plugins().registry, n_votes=int(spec["n_votes"]), n_train=int(spec["n_train"]), section=SECTION
    )

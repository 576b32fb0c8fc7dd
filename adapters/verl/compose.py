"""The full verl configuration: verl's own ``ppo_trainer`` defaults with ttrl's values on top.

Composed with Hydra from the config files inside the installed verl package, exactly as
``python -m verl.trainer.main_ppo`` composes them, so a key verl does not know is caught here, before
Ray starts, and named with the run config's file:line. verl's own ``validate_config`` then runs on
the result (batch-size divisibility and the like).
"""

from __future__ import annotations

import contextlib
import sys
import warnings
from pathlib import Path
from typing import Any

from ttrl.core.config import RunConfig
from ttrl.core.errors import OptionError

from .settings import SECTION

#: Keys ttrl adds that verl's schema does not declare (set with the struct check off).
EXTRA_KEYS = (
    "ttrl",
    "ray_kwargs.ray_init.runtime_env.worker_process_setup_hook",
    "reward.custom_reward_function.reward_kwargs",  # read by verl's get_custom_reward_fn
)


def verl_config_dir() -> Path:
    import verl

    return Path(verl.__file__).resolve().parent / "trainer" / "config"


def compose_verl_config(values: dict[str, Any], config: RunConfig):
    """verl's composed ``ppo_trainer`` config with ``values`` (dotted keys) set; an OmegaConf node."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf, open_dict
    from omegaconf.errors import OmegaConfBaseException

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(verl_config_dir()), version_base=None):
        cfg = compose(config_name="ppo_trainer")
    for key, value in values.items():
        if any(key == extra or key.startswith(extra + ".") for extra in EXTRA_KEYS):
            with open_dict(cfg):
                OmegaConf.update(cfg, key, value, merge=False, force_add=True)
            continue
        try:
            OmegaConf.update(cfg, key, value, merge=False)
        except OmegaConfBaseException as exc:
            where = config.locate((SECTION, "overrides", key))
            raise OptionError(
                f"verl has no setting {key!r}" + (f" ({where})" if where else "")
                + f": {type(exc).__name__}: {str(exc).splitlines()[0]}. Keys are those of verl's "
                "trainer/config/ppo_trainer.yaml (see `ttrl train --config RUN.yaml --dry-run`)."
            ) from None
    return cfg


def validate_with_verl(cfg, config: RunConfig) -> None:
    """verl's own configuration checks, as its entry point runs them, reported as a user error."""
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    try:
        with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
            # verl prints its verdict and warns that GRPO-style estimators need no critic: not ours to show
            warnings.simplefilter("ignore", UserWarning)
            validate_config(config=cfg, use_reference_policy=need_reference_policy(cfg), use_critic=need_critic(cfg))
    except (AssertionError, ValueError) as exc:
        where = config.locate((SECTION,))
        raise OptionError(
            f"verl rejects the resolved configuration of the verl: section" + (f" ({where})" if where else "")
            + f": {exc}"
        ) from None


def to_yaml(cfg) -> str:
    from omegaconf import OmegaConf

    return OmegaConf.to_yaml(cfg)

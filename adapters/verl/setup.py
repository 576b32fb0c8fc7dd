"""Ray's ``worker_process_setup_hook`` for verl runs: registers ttrl's trainer and advantage estimator.

verl builds its trainer inside a Ray actor (``TaskRunnerV1``) that looks the trainer up by name
(``trainer.v1.trainer_mode``) in a registry filled at import time. The generated verl config names
one of these hooks in ``ray_kwargs.ray_init.runtime_env``, so every process of the job imports ttrl's
trainer first; started without it, verl fails on the first step with "Unknown trainer 'ttrl'" rather
than training on anything else. Runs whose estimator needs self-certainty or token confidence get
:func:`register_logit_stats`, which also patches verl's log-prob pass in the actor workers
(:mod:`ttrl.adapters.verl.logit_stats`); every other run leaves verl's workers unpatched.
"""

from __future__ import annotations


def register() -> None:
    """Import (and thereby register) ttrl's verl trainer and advantage estimator."""
    from . import trainer  # noqa: F401  registers trainer.v1.trainer_mode=ttrl
    from .batch import register_advantage_estimator

    register_advantage_estimator()


def register_logit_stats() -> None:
    """:func:`register`, plus self-certainty and token confidence in verl's log-prob pass."""
    from .logit_stats import install

    register()
    install()

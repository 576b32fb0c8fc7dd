"""Test-time RL on one machine through TRL's ``GRPOTrainer`` (``trainer: trl`` in a run config).

:mod:`.group_rewards` turns a batch of completions into per-group estimates (no torch, no TRL);
:mod:`.binding` is the GRPOTrainer reward function and the policy's token statistics;
:mod:`.settings` validates ``trl:``; :mod:`.run` is ``ttrl train``. See docs/trl.md.
"""

from .run import launch

__all__ = ["launch"]

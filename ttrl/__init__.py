"""ttrl: pluggable reward estimation for label-free (test-time) reinforcement learning of LLMs."""

from __future__ import annotations

import importlib.metadata

from ttrl.core.data import AnswerClasses, Estimate, GroupRecord, Rollout, RolloutGroup
from ttrl.core.hookspecs import hookimpl

try:
    __version__ = importlib.metadata.version("ttrl")
except importlib.metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = ["AnswerClasses", "Estimate", "GroupRecord", "Rollout", "RolloutGroup", "hookimpl", "__version__"]

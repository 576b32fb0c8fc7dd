"""Errors that ttrl shows to people.

A :class:`UserError` is something the user can fix (a name, an option, a file). The CLI prints its
message as one paragraph and exits with status 2; ``TTRL_DEBUG=1`` adds the traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """Something the user can fix: say what was wrong, where, and what to do."""

    exit_code = 2


class UnknownNameError(UserError):
    """A name (estimator, extractor, shaper, task) that nothing registered."""


class OptionError(UserError):
    """An option that does not validate against its component's options model."""


class PluginError(UserError):
    """A plugin that failed to load or registered a name another plugin owns (strict mode only)."""


class DataFileError(UserError):
    """A rollout or data file that cannot be read."""


class EstimatorInputError(UserError):
    """Rollouts that lack what an estimator needs (token statistics), or carry non-finite values."""


class EstimatorFailure(Exception):
    """An estimator raised (or returned something malformed, or ran out of time) on one group.

    Not a :class:`UserError`: it is a bug in the estimator, reported with its name, its plugin and the
    group id. ``kind`` is ``"error"`` (it raised), ``"bad_output"`` (its return value is not a valid
    :class:`~ttrl.core.data.Estimate`) or ``"timeout"`` (it exceeded the per-group time limit).
    """

    def __init__(self, estimator: str, group_id: str, reason: str, *, plugin: str | None = None, kind: str = "error"):
        by = f" (plugin {plugin!r})" if plugin else ""
        super().__init__(f"estimator {estimator!r}{by} failed on group {group_id!r}: {reason}")
        self.estimator = estimator
        self.group_id = group_id
        self.reason = reason
        self.plugin = plugin
        self.kind = kind


class GroupLayoutError(UserError):
    """A trainer batch whose responses are not laid out as whole, consecutive prompt groups."""


class UnscoreableGroup(UserError):
    """A group the estimator could not score while the run config says ``groups: {on_failure: stop}``."""

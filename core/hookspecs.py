"""Hook specifications of the ``ttrl`` pluggy project.

Every hook is ``register_*(register)``: a plugin calls ``register`` once per component it provides, and
the host owns names, aliases and de-duplication. Each hook is documented in ``docs/plugin-hooks.md``.
"""

from __future__ import annotations

import pluggy

PROJECT_NAME = "ttrl"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def register_extractors(register):
    """Register answer extractors: functions that turn a rollout's text into an answer string.

    Answer extraction family. Call ``register(name, extract, *, compare="math", aliases=(),
    description=None)`` once per extractor, where ``extract(text: str) -> str | None`` returns the
    answer, or ``None`` when the text has none (never an empty string, which could win a vote), and
    ``compare`` names how two extracted answers are judged equivalent by the answer engine
    (``"math"``: normalisation, exact rationals, then math-verify; ``"exact"``: normalised strings;
    ``"number"``: exact rational comparison). The extractor's name is the ``task`` of rollout files.

    :param register: callback that adds one extractor to the registry.
    """


@hookspec
def register_estimators(register):
    """Register reward estimators: functions from one prompt's group of rollouts to a label and rewards.

    Label estimation family. Call ``register(name, estimate, *, options=None, aliases=(),
    requires=(), description=None, defaults=None)`` once per estimator, where ``estimate(group, options)`` takes a
    :class:`ttrl.core.data.RolloutGroup` (never the reference answer) and an instance of ``options``
    (a pydantic model; ``None`` means the estimator has no options), and returns a
    :class:`ttrl.core.data.Estimate` with one reward per rollout. ``requires`` names what the
    estimator reads, so the host can check inputs before any work starts: ``"answers"`` (answer
    classes are computed and attached as ``group.classes``) and rollout statistics such as
    ``"mean_entropy"`` or ``"token_entropy"``; it may also be a function of the options instance
    returning such names. ``description`` defaults to the first line of the function's docstring.
    ``defaults`` (a dict of option values) registers a preset of ``estimate``: the same options model
    with those defaults changed, validated when registered.

    :param register: callback that adds one estimator to the registry.
    """


@hookspec
def register_reward_shapers(register):
    """Register reward shapers: functions that adjust an estimator's rewards for one group.

    Reward shaping family. Call ``register(name, shape, *, options=None, aliases=(), requires=(),
    description=None)`` once per shaper, where ``shape(group, estimate, options)`` returns a new
    :class:`ttrl.core.data.Estimate` (for instance with a length penalty subtracted). Shapers run in
    the order the run config lists them (``reward_shaping:``), after the estimator.

    :param register: callback that adds one reward shaper to the registry.
    """

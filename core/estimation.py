"""Resolving estimators by name and running them on groups, with input checks and output validation.

This is the one place where an estimator function is called: the CLI, the bench harness and the
trainer adapters all go through :class:`EstimationPipeline`.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel, ValidationError

from .answers import AnswerEngine
from .config import ComponentSpec, Locator, RunConfig
from .data import STAT_FIELDS, TOKEN_FIELDS, AnswerClasses, Estimate, RolloutGroup
from .errors import EstimatorFailure, EstimatorInputError, OptionError
from .metrics import GroupScore, GroupTruth, evaluate_group, grade_group
from .registry import ANSWERS, ComponentTable, EstimatorInfo, Registry
from .timelimit import TimeLimitExceeded, call_with_time_limit

HOW_TO_GET_STATS = (
    "Produce rollouts with token statistics with `ttrl rollouts generate --model M --data FILE -n N` "
    "(add --token-stats for the per-token arrays), or choose an estimator that needs only answers "
    "(majority_vote)."
)


@dataclass(frozen=True)
class Resolved:
    """A registered component with validated options and a display label."""

    info: EstimatorInfo
    options: BaseModel | None
    label: str

    @property
    def name(self) -> str:
        return self.info.name

    def options_dict(self) -> dict[str, Any]:
        return self.options.model_dump(mode="json") if self.options is not None else {}

    def required_inputs(self) -> frozenset[str]:
        return self.info.required_inputs(self.options)


def _type_name(annotation: Any) -> str:
    name = getattr(annotation, "__name__", None)
    return name if name and not str(annotation).startswith("typing") else str(annotation).replace("typing.", "")


def validate_options(
    info: EstimatorInfo,
    options: Mapping[str, Any] | None,
    *,
    kind: str = "estimator",
    locate: Locator | None = None,
    path: tuple[Any, ...] = (),
) -> BaseModel | None:
    """Validate ``options`` with the component's options model; errors name component, option and type."""
    options = dict(options or {})
    model = info.options
    where_of = (lambda key: locate((*path, key)) if locate else None)
    if model is None:
        if options:
            key = next(iter(options))
            where = where_of(key)
            raise OptionError(
                f"{kind.capitalize()} {info.name!r} takes no options, but {key!r} was given"
                + (f" ({where})" if where else "")
                + ". Remove the option."
            )
        return None
    fields = model.model_fields
    for key in options:
        if key not in fields:
            close = difflib.get_close_matches(key, list(fields), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            where = where_of(key)
            raise OptionError(
                f"{kind.capitalize()} {info.name!r} has no option {key!r}"
                + (f" ({where})" if where else "")
                + f".{hint} Its options: {', '.join(fields) or '(none)'}. Run `ttrl estimators` for types and defaults."
            )
    try:
        return model.model_validate(options)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            key = str(err["loc"][0]) if err["loc"] else "(options)"
            field = fields.get(key)
            expected = _type_name(field.annotation) if field is not None else "?"
            given = err.get("input")
            where = where_of(key) if err["loc"] else None
            problems.append(
                f"option {key!r} expects {expected} ({err['msg']}), got {given!r}" + (f" at {where}" if where else "")
            )
        raise OptionError(
            f"Invalid options for {kind} {info.name!r}: " + "; ".join(problems)
            + ". Run `ttrl estimators` for each option's type and default."
        ) from None


def resolve(
    table: ComponentTable,
    spec: ComponentSpec,
    *,
    locate: Locator | None = None,
    path: tuple[Any, ...] = (),
) -> Resolved:
    """Phase 2 of config validation: look ``spec.name`` up and validate ``spec.options``."""
    info = table.get(spec.name)
    options = validate_options(info, spec.options, kind=table.kind.replace("_", " "), locate=locate, path=(*path, "options"))
    return Resolved(info=info, options=options, label=spec.label or info.name)


def _check_finite(value: float, group: RolloutGroup, index: int, field: str, estimator: str) -> None:
    if not math.isfinite(value):
        raise EstimatorInputError(
            f"Group {group.id!r}, rollout {index}: {field} is {value}, not a finite number; estimator "
            f"{estimator!r} cannot use it. Regenerate the statistics or drop the group."
        )


class EstimationPipeline:
    """An estimator plus the reward shapers after it, bound to an answer engine."""

    def __init__(
        self,
        estimator: Resolved,
        engine: AnswerEngine,
        shapers: Iterable[Resolved] = (),
        *,
        time_limit: float | None = None,
    ):
        self.estimator = estimator
        self.shapers = list(shapers)
        self.engine = engine
        #: Wall-clock seconds for the estimator and shapers on one group (``None``: no limit).
        self.time_limit = time_limit
        required: set[str] = set(estimator.required_inputs())
        for shaper in self.shapers:
            required |= shaper.required_inputs()
        self.requires = frozenset(required)

    @classmethod
    def from_config(cls, config: RunConfig, registry: Registry, spec: ComponentSpec | None = None) -> EstimationPipeline:
        spec = spec or config.estimator
        if spec is None:
            raise OptionError("The run config selects no estimator. Add `estimator: {name: majority_vote}`.")
        estimator = resolve(registry.estimators, spec, locate=config.locate, path=("estimator",))
        shapers = [
            resolve(registry.shapers, s, locate=config.locate, path=("reward_shaping", i))
            for i, s in enumerate(config.reward_shaping)
        ]
        engine = AnswerEngine.from_settings(registry, config.answers)
        return cls(estimator, engine, shapers, time_limit=config.groups.estimator_timeout_seconds)

    @property
    def needs_answers(self) -> bool:
        return ANSWERS in self.requires

    def check_inputs(self, group: RolloutGroup) -> None:
        """Raise :class:`EstimatorInputError` when a rollout lacks (or has non-finite) required inputs."""
        if self.needs_answers:
            self.engine.registry.extractors.get(self.engine.task_of(group))
        stat_needs = [n for n in self.requires if n != ANSWERS]
        for index, rollout in enumerate(group.rollouts):
            for need in stat_needs:
                if need in TOKEN_FIELDS:
                    values = getattr(rollout, need)
                    if values is None:
                        raise self._missing(group, index, need)
                    finite = np.isfinite(values)
                    if not finite.all():  # one vectorised pass: arrays can hold thousands of tokens
                        bad = int(np.argmin(finite))
                        _check_finite(float(values[bad]), group, index, f"{need}[{bad}]", self.estimator.name)
                elif need in STAT_FIELDS:
                    value = rollout.stat(need)
                    if value is None:
                        raise self._missing(group, index, f"stats.{need}")
                    _check_finite(value, group, index, f"stats.{need}", self.estimator.name)

    def _missing(self, group: RolloutGroup, index: int, field: str) -> EstimatorInputError:
        # what an estimator reads can depend on its options (entropy with scope=last_k needs token arrays)
        options = self.estimator.options
        changed = options.model_dump(mode="json", exclude_defaults=True) if options is not None else {}
        with_options = f" with {', '.join(f'{k}={v}' for k, v in changed.items())}" if changed else ""
        if group.rollouts[index].stats.get("num_tokens") == 0:
            return EstimatorInputError(
                f"Estimator {self.estimator.name!r}{with_options} needs {field}, which rollout {index} of group "
                f"{group.id!r} does not have: the response is empty (0 tokens), so it has no token statistics."
            )
        return EstimatorInputError(
            f"Estimator {self.estimator.name!r}{with_options} needs {field}, which rollout {index} of group "
            f"{group.id!r} does not have. {HOW_TO_GET_STATS}"
        )

    def classify(self, group: RolloutGroup) -> AnswerClasses:
        return self.engine.classify(group)

    def run(self, group: RolloutGroup, classes: AnswerClasses | None = None) -> Estimate:
        """Estimate one group's rewards. Inputs must have passed :meth:`check_inputs`.

        The estimator and shapers together get :attr:`time_limit` seconds; whatever they raise (a
        ``SystemExit`` too; only ``KeyboardInterrupt`` passes through) or return that is not a valid
        :class:`Estimate` becomes an :class:`EstimatorFailure` naming the component and its plugin.
        """
        if self.needs_answers and group.classes is None:
            group = dataclasses.replace(group, classes=classes if classes is not None else self.classify(group))
        running = [self.estimator]

        def chain() -> Estimate:
            estimate = self._call(self.estimator, group, lambda r: r.info.function(group, r.options))
            for shaper in self.shapers:
                running[0] = shaper
                estimate = self._call(shaper, group, lambda r, e=estimate: r.info.function(group, e, r.options))
            return estimate

        try:
            return call_with_time_limit(chain, self.time_limit, name=f"ttrl-estimator-{self.estimator.name}")
        except TimeLimitExceeded as exc:
            component = running[0]
            raise EstimatorFailure(
                component.name, group.id,
                f"took longer than {exc.seconds:g} s on this group (groups.estimator_timeout_seconds in the run config)",
                plugin=component.info.plugin, kind="timeout",
            ) from None

    def grade(self, group: RolloutGroup, reference: str | None) -> GroupTruth | None:
        """Which rollouts are correct against ``reference`` (metrics only); ``None`` without a reference.

        Computes and attaches ``group.classes`` when missing.
        """
        if reference is None:
            return None
        if group.classes is None:
            group.classes = self.classify(group)
        return grade_group(self.engine, group.classes, reference, self.engine.task_of(group))

    def run_and_score(self, group: RolloutGroup, reference: str | None = None) -> tuple[Estimate, GroupScore | None]:
        """Estimate one group and, when its reference is known, score the estimate (trainers' logging).

        The answer classes are computed once and serve both the estimator and the grading, also for
        estimators that need no answers; they are left on ``group.classes``. The reference never
        reaches the estimator.
        """
        if group.classes is None and (self.needs_answers or reference is not None):
            group.classes = self.classify(group)
        estimate = self.run(group)
        truth = self.grade(group, reference)
        if truth is None:
            return estimate, None
        return estimate, evaluate_group(self.engine, group.classes, truth, estimate.rewards, estimate.label)

    @staticmethod
    def _call(component: Resolved, group: RolloutGroup, invoke) -> Estimate:
        try:
            result = invoke(component)
        except (EstimatorInputError, OptionError):
            raise
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # noqa: BLE001 - SystemExit in a plugin must not end a training run
            raise EstimatorFailure(
                component.name, group.id, f"{type(exc).__name__}: {exc}", plugin=component.info.plugin
            ) from exc
        return validate_estimate(result, group, component)


def _bad_output(component: Resolved, group: RolloutGroup, reason: str) -> EstimatorFailure:
    return EstimatorFailure(component.name, group.id, reason, plugin=component.info.plugin, kind="bad_output")


def validate_estimate(result: object, group: RolloutGroup, component: Resolved) -> Estimate:
    """``result`` as a clean :class:`Estimate` (plain float rewards, sorted unique int train indices).

    Rewards must be finite real numbers, one per rollout; the label a string or ``None``;
    ``train_indices`` ``None`` or distinct integers in ``range(N)``; diagnostics a mapping.
    Anything else is an :class:`EstimatorFailure` (kind ``bad_output``) naming the component's plugin.
    """
    n = len(group.rollouts)
    if not isinstance(result, Estimate):
        raise _bad_output(component, group, f"returned {type(result).__name__}, not Estimate")
    rewards = result.rewards
    if isinstance(rewards, (str, bytes, Mapping)) or not isinstance(rewards, (Sequence, np.ndarray)):
        raise _bad_output(component, group, f"rewards must be a list of numbers, got {type(rewards).__name__}")
    if len(rewards) != n:
        raise _bad_output(component, group, f"returned {len(rewards)} rewards for {n} rollouts")
    clean = []
    for i, value in enumerate(rewards):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise _bad_output(component, group, f"reward {i} is {value!r} ({type(value).__name__}), not a number")
        value = float(value)
        if not math.isfinite(value):
            raise _bad_output(component, group, f"returned a non-finite reward ({value}) for rollout {i}")
        clean.append(value)
    if result.label is not None and not isinstance(result.label, str):
        raise _bad_output(component, group, f"label must be a string or None, got {type(result.label).__name__}")
    if not isinstance(result.diagnostics, Mapping):
        raise _bad_output(component, group, f"diagnostics must be a dict, got {type(result.diagnostics).__name__}")
    train = result.train_indices
    if train is not None:
        if isinstance(train, (str, bytes, Mapping)) or not isinstance(train, (Sequence, np.ndarray)):
            raise _bad_output(component, group, f"train_indices must be a list of indices, got {type(train).__name__}")
        for i in train:
            if isinstance(i, bool) or not isinstance(i, numbers.Integral) or not 0 <= i < n:
                raise _bad_output(
                    component, group, f"train_indices must be distinct integers in 0..{n - 1}, got {list(train)!r}"
                )
        if len(set(int(i) for i in train)) != len(train):
            raise _bad_output(component, group, f"train_indices has duplicates: {list(train)!r}")
        train = sorted(int(i) for i in train)
    return Estimate(
        rewards=clean,
        label=None if result.label is None else str(result.label),
        diagnostics=dict(result.diagnostics),
        train_indices=train,
    )

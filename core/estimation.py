"""Resolving estimators by name and running them on groups, with input checks and output validation.

This is the one place where an estimator function is called: the CLI, the bench harness and the
trainer adapters all go through :class:`EstimationPipeline`.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel, ValidationError

from .answers import AnswerEngine
from .config import ComponentSpec, Locator, RunConfig
from .data import STAT_FIELDS, TOKEN_FIELDS, AnswerClasses, Estimate, RolloutGroup
from .errors import EstimatorFailure, EstimatorInputError, OptionError
from .metrics import GroupScore, evaluate_group, grade_group
from .registry import ANSWERS, ComponentTable, EstimatorInfo, Registry

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

    def __init__(self, estimator: Resolved, engine: AnswerEngine, shapers: Iterable[Resolved] = ()):
        self.estimator = estimator
        self.shapers = list(shapers)
        self.engine = engine
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
        return cls(estimator, engine, shapers)

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
        return EstimatorInputError(
            f"Estimator {self.estimator.name!r}{with_options} needs {field}, which rollout {index} of group "
            f"{group.id!r} does not have. {HOW_TO_GET_STATS}"
        )

    def classify(self, group: RolloutGroup) -> AnswerClasses:
        return self.engine.classify(group)

    def run(self, group: RolloutGroup, classes: AnswerClasses | None = None) -> Estimate:
        """Estimate one group's rewards. Inputs must have passed :meth:`check_inputs`."""
        if self.needs_answers and group.classes is None:
            group = dataclasses.replace(group, classes=classes if classes is not None else self.classify(group))
        estimate = self._call(self.estimator, group, lambda r: r.info.function(group, r.options))
        for shaper in self.shapers:
            estimate = self._call(shaper, group, lambda r, e=estimate: r.info.function(group, e, r.options))
        return estimate

    def run_and_score(self, group: RolloutGroup, reference: str | None = None) -> tuple[Estimate, GroupScore | None]:
        """Estimate one group and, when its reference is known, score the estimate (trainers' logging).

        The answer classes are computed once and serve both the estimator and the grading, also for
        estimators that need no answers; they are left on ``group.classes``. The reference never
        reaches the estimator.
        """
        if group.classes is None and (self.needs_answers or reference is not None):
            group.classes = self.classify(group)
        estimate = self.run(group)
        if reference is None or group.classes is None:
            return estimate, None
        truth = grade_group(self.engine, group.classes, reference, self.engine.task_of(group))
        return estimate, evaluate_group(self.engine, group.classes, truth, estimate.rewards, estimate.label)

    @staticmethod
    def _call(component: Resolved, group: RolloutGroup, invoke) -> Estimate:
        try:
            result = invoke(component)
        except (EstimatorInputError, OptionError):
            raise
        except Exception as exc:
            raise EstimatorFailure(component.name, group.id, f"{type(exc).__name__}: {exc}") from exc
        if not isinstance(result, Estimate):
            raise EstimatorFailure(component.name, group.id, f"returned {type(result).__name__}, not Estimate")
        if len(result.rewards) != len(group.rollouts):
            raise EstimatorFailure(
                component.name, group.id, f"returned {len(result.rewards)} rewards for {len(group.rollouts)} rollouts"
            )
        rewards = []
        for r in result.rewards:
            value = float(r)
            if not math.isfinite(value):
                raise EstimatorFailure(component.name, group.id, f"returned a non-finite reward ({value})")
            rewards.append(value)
        result.rewards = rewards
        return result

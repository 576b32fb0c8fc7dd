"""Run configs: YAML validated by pydantic in two phases.

Phase 1 checks the shape (``estimator: {name, options}`` and the other sections). Phase 2 looks each
component name up in the registry and validates its options with that component's own options model
(:mod:`ttrl.core.estimation`). Errors point at the YAML file and line.
"""

from __future__ import annotations

import difflib
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import UserError

Locator = Callable[[tuple[Any, ...]], str | None]


class ComponentSpec(BaseModel):
    """A component selected by name, with its options (validated in phase 2)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Registered name or alias, e.g. majority_vote, dare, self-certainty.")
    options: dict[str, Any] = Field(default_factory=dict, description="Options of that component.")
    label: str | None = Field(
        default=None, description="Display name, to compare one estimator under several option sets."
    )

    @property
    def display_name(self) -> str:
        return self.label or self.name


class AnswerSettings(BaseModel):
    """How answers are extracted and compared."""

    model_config = ConfigDict(extra="forbid")

    timeout_seconds: float = Field(default=5.0, gt=0, description="Wall-clock limit per parse or comparison.")
    task: str | None = Field(default=None, description="Extractor to use for every group, overriding each group's task.")
    percent: Literal["value", "fraction"] = Field(default="value", description="25% is 25 (value) or 0.25 (fraction).")
    group_seconds: float = Field(default=1.0, gt=0, description="Checker time one group may use before it is compared by normalised text.")
    group_requests: int = Field(default=256, gt=0, description="Checker requests one group may make before it is compared by normalised text.")
    decimals: Literal["rounded", "exact"] = Field(
        default="rounded", description="A 4+ digit decimal equals an exact value it rounds to (rounded), or only its own value (exact).")
    class_thresholds: dict[Literal["rouge_l", "jaccard", "ast"], Annotated[float, Field(ge=0, le=1)]] = Field(
        default_factory=dict,
        description="free_form/code tasks: θ of the answer classes per similarity (defaults rouge_l 0.5, jaccard 0.5, ast 0.9).",
    )
    grade_thresholds: dict[Literal["rouge_l", "jaccard", "ast"], Annotated[float, Field(ge=0, le=1)]] = Field(
        default_factory=dict,
        description="free_form/code tasks: θ of grading against a reference per similarity (defaults rouge_l 0.5, jaccard 0.5, ast 0.95).",
    )

    def similarity_thresholds(self):
        """The :class:`ttrl.core.similarity.SimilarityThresholds` these settings select."""
        from .similarity import SimilarityThresholds

        return SimilarityThresholds(classes=dict(self.class_thresholds), grade=dict(self.grade_thresholds))


class GroupSettings(BaseModel):
    """What every trainer does with a prompt group the estimator cannot score."""

    model_config = ConfigDict(extra="forbid")

    on_failure: Literal["skip", "stop"] = Field(
        default="skip",
        description="A group with missing or non-finite token statistics, an estimator error, invalid "
        "estimator output or a timeout: skip = that group gives no learning signal, the run goes on and "
        "the group is counted (failed_groups); stop = the run ends with the reason.",
    )
    estimator_timeout_seconds: float | None = Field(
        default=60.0, gt=0, description="Wall-clock limit for the estimator and shapers on one group; null: none."
    )


class RunConfig(BaseModel):
    """A run config file. Trainer sections are validated by the selected trainer adapter."""

    model_config = ConfigDict(extra="forbid")

    estimator: ComponentSpec | None = Field(default=None, description="The reward estimator.")
    estimators: list[ComponentSpec] = Field(
        default_factory=list, description="Several estimator specs, for `ttrl bench`."
    )
    reward_shaping: list[ComponentSpec] = Field(
        default_factory=list, description="Reward shapers applied in order after the estimator."
    )
    answers: AnswerSettings = Field(default_factory=AnswerSettings)
    groups: GroupSettings = Field(default_factory=GroupSettings, description="Unscoreable groups in training.")
    trainer: str | None = Field(default=None, description="Trainer adapter for `ttrl train`: openrlhf, trl or verl.")
    openrlhf: dict[str, Any] = Field(default_factory=dict, description="OpenRLHF adapter settings.")
    trl: dict[str, Any] = Field(default_factory=dict, description="TRL adapter settings.")
    verl: dict[str, Any] = Field(default_factory=dict, description="verl adapter settings.")
    study: dict[str, Any] = Field(default_factory=dict, description="`ttrl study` settings: arms and evaluation.")

    #: Where each value came from (file:line), set by :func:`load_run_config`.
    _locator: Locator | None = None

    def locate(self, path: tuple[Any, ...]) -> str | None:
        return self._locator(path) if self._locator else None


def _node_line(root: yaml.Node | None, source: str, path: tuple[Any, ...]) -> str | None:
    node = root
    if node is None:
        return None
    for key in path:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if key_node.value == str(key):
                    node = value_node
                    break
            else:
                break
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
        else:
            break
    return f"{source}:{node.start_mark.line + 1}"


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside an annotation such as ``X | None`` or ``list[X]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def known_keys(model: type[BaseModel] | None, loc: tuple[Any, ...]) -> list[str]:
    """The settings a model accepts at ``loc``'s parent (list indexes skipped), for "did you mean"."""
    for part in loc[:-1]:
        if model is None:
            return []
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        model = _model_in(field.annotation) if field is not None else None
    return list(model.model_fields) if model is not None else []


def format_validation_error(exc: ValidationError, *, what: str, locate: Locator | None = None, prefix: tuple = (),
                            model: type[BaseModel] | None = None) -> str:
    """One paragraph per pydantic error: location, problem, value given, and file:line when known.

    With ``model`` (the validated class), an unknown key gets "did you mean" from the keys it accepts.
    """
    lines = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        dotted = ".".join(str(p) for p in (*prefix, *loc)) or "(top level)"
        where = locate((*prefix, *loc)) if locate else None
        given = err.get("input")
        if err["type"] == "extra_forbidden":
            keys = known_keys(model, loc)
            close = difflib.get_close_matches(str(loc[-1]), keys, n=3, cutoff=0.5) if loc else []
            problem = "is not a known setting" + (f" (did you mean: {', '.join(close)}?)" if close else (
                f" (known: {', '.join(keys)})" if keys else ""))
        elif err["type"] == "missing":
            problem = "is required"
        else:
            problem = f"{err['msg'][0].lower()}{err['msg'][1:]}; got {given!r}"
        lines.append(f"{dotted} {problem}" + (f" ({where})" if where else ""))
    return f"Invalid {what}: " + "; ".join(lines) + "."


def load_run_config(path: str | Path) -> RunConfig:
    """Read and validate (phase 1) a YAML run config."""
    path = Path(path)
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"Run config {source} does not exist. Check the path given to --config.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"Cannot read run config {source}: {exc}.") from None
    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark else source
        raise UserError(f"Run config {where} is not valid YAML: {getattr(exc, 'problem', exc)}.") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UserError(f"Run config {source} must be a YAML mapping (estimator:, trainer:, ...), not a {type(data).__name__}.")

    def locate(loc: tuple[Any, ...]) -> str | None:
        return _node_line(root, source, loc)

    try:
        config = RunConfig.model_validate(data)
    except ValidationError as exc:
        raise UserError(format_validation_error(exc, what=f"run config {source}", locate=locate, model=RunConfig)) from None
    config._locator = locate
    return config

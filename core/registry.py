"""Named components that plugins register: extractors, estimators and reward shapers.

The host owns names: it normalises them (``self-certainty`` is ``self_certainty``), refuses a name or
alias that another plugin already registered, and answers unknown names with "did you mean".
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, Field, create_model

from .errors import UnknownNameError

#: Inputs an estimator may declare in ``requires`` besides rollout statistics.
ANSWERS = "answers"
#: What an estimator needs, as ``ttrl estimators`` groups them: a kind per input it may require.
NEEDS_ANSWERS = "answers"
NEEDS_TOKEN_STATISTICS = "token statistics"
NEEDS_CONFIDENCE = "top-k confidence"
_CONFIDENCE_INPUTS = frozenset({"mean_confidence", "token_confidence"})


def input_kinds(inputs: Iterable[str]) -> tuple[str, ...]:
    """The kinds of input among ``inputs``: answers, token statistics (entropy, self-certainty,
    log-probs, token counts) and DeepConf's top-k confidence, in that order; empty for none."""
    inputs = set(inputs)
    kinds = []
    if ANSWERS in inputs:
        kinds.append(NEEDS_ANSWERS)
    if inputs - {ANSWERS} - _CONFIDENCE_INPUTS:
        kinds.append(NEEDS_TOKEN_STATISTICS)
    if inputs & _CONFIDENCE_INPUTS:
        kinds.append(NEEDS_CONFIDENCE)
    return tuple(kinds)


def with_defaults(model: type[BaseModel], defaults: dict[str, Any], name: str) -> type[BaseModel]:
    """A subclass of the options ``model`` whose listed fields have new defaults (validated by ``model``).

    This is how one estimator function is registered again as a preset of itself (``srt`` is
    ``majority_vote`` with its own defaults): the preset's options are still the same model's,
    so the function sees an instance of ``model``.
    """
    unknown = sorted(set(defaults) - set(model.model_fields))
    if unknown:
        raise ValueError(f"defaults name no option of {model.__name__}: {', '.join(unknown)}")
    checked = model.model_validate(defaults)  # raises pydantic's ValidationError on a bad value
    fields = {}
    for key in defaults:
        info = model.model_fields[key]
        # the constraints (ge=, le=, ...) travel in the annotation's metadata
        annotation = Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
        fields[key] = (annotation, Field(getattr(checked, key), description=info.description))
    title = "".join(part.capitalize() for part in name.split("_")) + "Options"
    return create_model(title, __base__=model, **fields)


def normalize_name(name: str) -> str:
    """Canonical spelling of a component name: lower case, hyphens as underscores."""
    return name.strip().lower().replace("-", "_")


def _first_doc_line(obj: Any) -> str:
    doc = inspect.getdoc(obj) or ""
    return doc.strip().splitlines()[0].strip() if doc.strip() else ""


@dataclass(frozen=True)
class Component:
    """Fields every registered component has."""

    name: str
    function: Callable[..., Any]
    plugin: str
    aliases: tuple[str, ...] = ()
    description: str = ""


@dataclass(frozen=True)
class ExtractorInfo(Component):
    compare: str = "math"


@dataclass(frozen=True)
class EstimatorInfo(Component):
    options: type[BaseModel] | None = None
    requires: frozenset[str] | Callable[[Any], Iterable[str]] = field(default_factory=frozenset)

    def required_inputs(self, options: Any) -> frozenset[str]:
        """What this estimator reads, for the given options instance."""
        if callable(self.requires):
            return frozenset(self.requires(options))
        return frozenset(self.requires)

    def needs(self) -> tuple[str, ...]:
        """The kinds of input (:func:`input_kinds`) it reads with its default options."""
        defaults = self.options() if self.options is not None else None
        return input_kinds(self.required_inputs(defaults))


@dataclass(frozen=True)
class ShaperInfo(EstimatorInfo):
    pass


T = TypeVar("T", bound=Component)


@dataclass(frozen=True, slots=True)
class Rejection:
    """A registration the host refused (duplicate name or bad arguments)."""

    kind: str
    name: str
    plugin: str
    reason: str


class ComponentTable(Generic[T]):
    """Components of one kind, by canonical name, with aliases."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}
        self._aliases: dict[str, str] = {}

    def add(self, item: T) -> None:
        """Add ``item``; raise ``ValueError`` when its name or an alias is already taken."""
        keys = [item.name, *item.aliases]
        for key in keys:
            owner = self._lookup(key)
            if owner is not None:
                raise ValueError(
                    f"{self.kind} name {key!r} is already registered by plugin {owner.plugin!r}"
                )
        self._items[item.name] = item
        for alias in item.aliases:
            self._aliases[alias] = item.name

    def _lookup(self, name: str) -> T | None:
        key = normalize_name(name)
        if key in self._items:
            return self._items[key]
        if key in self._aliases:
            return self._items[self._aliases[key]]
        return None

    def get(self, name: str) -> T:
        """The component called ``name`` (or one of its aliases), else :class:`UnknownNameError`."""
        found = self._lookup(name)
        if found is not None:
            return found
        choices = sorted([*self._items, *self._aliases])
        close = difflib.get_close_matches(normalize_name(name), choices, n=3, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        available = ", ".join(sorted(self._items)) or "(none registered)"
        raise UnknownNameError(
            f"Unknown {self.kind} {name!r}.{hint} Available: {available}. "
            f"Run `ttrl {self.kind}s` to list them with their plugins; a third-party {self.kind} "
            "must be installed (pip install ttrl-<name>) before it can be used."
        )

    def __contains__(self, name: str) -> bool:
        return self._lookup(name) is not None

    def __iter__(self):
        return iter(sorted(self._items.values(), key=lambda c: c.name))

    def __len__(self) -> int:
        return len(self._items)

    def names(self) -> list[str]:
        return sorted(self._items)


class Registry:
    """Everything the loaded plugins registered, plus what was refused."""

    def __init__(self) -> None:
        self.extractors: ComponentTable[ExtractorInfo] = ComponentTable("extractor")
        self.estimators: ComponentTable[EstimatorInfo] = ComponentTable("estimator")
        self.shapers: ComponentTable[ShaperInfo] = ComponentTable("reward_shaper")
        self.rejections: list[Rejection] = []

    # -- the ``register`` callbacks handed to each plugin's hook implementation --------------------

    def extractor_callback(self, plugin: str) -> Callable[..., None]:
        def register(
            name: str,
            extract: Callable[[str], str | None],
            *,
            compare: str = "math",
            aliases: Iterable[str] = (),
            description: str | None = None,
        ) -> None:
            self._add(
                self.extractors,
                plugin,
                name,
                lambda canonical, alias_tuple: ExtractorInfo(
                    name=canonical,
                    function=extract,
                    plugin=plugin,
                    aliases=alias_tuple,
                    description=description or _first_doc_line(extract),
                    compare=compare,
                ),
                aliases,
            )

        return register

    def _estimator_like_callback(self, table: ComponentTable, cls: type, plugin: str) -> Callable[..., None]:
        def register(
            name: str,
            function: Callable[..., Any],
            *,
            options: type[BaseModel] | None = None,
            aliases: Iterable[str] = (),
            requires: Iterable[str] | Callable[[Any], Iterable[str]] = (),
            description: str | None = None,
            defaults: dict[str, Any] | None = None,
        ) -> None:
            if options is not None and not (isinstance(options, type) and issubclass(options, BaseModel)):
                self.rejections.append(
                    Rejection(table.kind, name, plugin, "options must be a pydantic BaseModel subclass")
                )
                return
            if defaults:
                if options is None:
                    self.rejections.append(Rejection(table.kind, name, plugin, "defaults given without options"))
                    return
                try:
                    options = with_defaults(options, dict(defaults), normalize_name(str(name)))
                except ValueError as exc:  # pydantic's ValidationError is one
                    self.rejections.append(Rejection(table.kind, name, plugin, f"bad defaults: {exc}"))
                    return
            self._add(
                table,
                plugin,
                name,
                lambda canonical, alias_tuple: cls(
                    name=canonical,
                    function=function,
                    plugin=plugin,
                    aliases=alias_tuple,
                    description=description or _first_doc_line(function),
                    options=options,
                    requires=requires if callable(requires) else frozenset(requires),
                ),
                aliases,
            )

        return register

    def estimator_callback(self, plugin: str) -> Callable[..., None]:
        return self._estimator_like_callback(self.estimators, EstimatorInfo, plugin)

    def shaper_callback(self, plugin: str) -> Callable[..., None]:
        return self._estimator_like_callback(self.shapers, ShaperInfo, plugin)

    def _add(self, table: ComponentTable, plugin: str, name: str, build, aliases: Iterable[str]) -> None:
        if not isinstance(name, str) or not name.strip():
            self.rejections.append(Rejection(table.kind, str(name), plugin, "name must be a non-empty string"))
            return
        canonical = normalize_name(name)
        alias_tuple = tuple(dict.fromkeys(normalize_name(a) for a in aliases if normalize_name(a) != canonical))
        try:
            table.add(build(canonical, alias_tuple))
        except ValueError as exc:
            self.rejections.append(Rejection(table.kind, canonical, plugin, str(exc)))

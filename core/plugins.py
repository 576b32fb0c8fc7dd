"""The plugin manager: built-in plugins and third-party entry points, each loaded on its own.

Built-in plugins (``DEFAULT_PLUGINS``) are registered through exactly the hooks third parties use.
Third-party plugins are found through the ``ttrl`` entry-point group. A plugin that fails to import,
fails to register, implements an unknown hook, or registers a name another plugin already owns is
reported (distribution, version, reason) and everything else keeps working; ``TTRL_STRICT_PLUGINS=1``
makes any such problem an error. ``TTRL_LOAD_PLUGINS=a,b`` loads only the listed third-party plugins
(by entry-point or distribution name; empty loads none).
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field

import pluggy

from . import hookspecs
from .errors import PluginError
from .registry import Registry

ENTRY_POINT_GROUP = "ttrl"

DEFAULT_PLUGINS: tuple[str, ...] = (
    "ttrl.plugins.extractors",
    "ttrl.plugins.majority_vote",
    "ttrl.plugins.dare",
    "ttrl.plugins.entropy",
    "ttrl.plugins.self_certainty",
    "ttrl.plugins.empo",
    "ttrl.plugins.confidence_vote",
    "ttrl.plugins.sequence_probability",
    "ttrl.plugins.spurious",
)

_REGISTER_HOOKS = ("register_extractors", "register_estimators", "register_reward_shapers")


class PluginWarning(UserWarning):
    """A third-party plugin could not be loaded or registered something that was refused."""


@dataclass
class PluginInfo:
    """What ``ttrl plugins`` shows for one plugin."""

    name: str
    module: str
    distribution: str | None = None
    version: str | None = None
    builtin: bool = False
    hooks: list[str] = field(default_factory=list)
    registered: dict[str, list[str]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    loaded: bool = False

    def describe(self) -> str:
        where = self.distribution or self.module
        if self.version:
            where += f" {self.version}"
        return f'plugin "{self.name}" ({where})'

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "module": self.module,
            "distribution": self.distribution,
            "version": self.version,
            "builtin": self.builtin,
            "loaded": self.loaded,
            "hooks": list(self.hooks),
            "registered": {k: list(v) for k, v in self.registered.items()},
            "errors": list(self.errors),
        }


@dataclass
class PluginSet:
    """A plugin manager, the registry its plugins filled, and a report per plugin."""

    manager: pluggy.PluginManager
    registry: Registry
    plugins: list[PluginInfo]

    def problems(self) -> list[str]:
        return [f"{info.describe()}: {err}" for info in self.plugins for err in info.errors]


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def _env_allowlist() -> set[str] | None:
    raw = os.environ.get("TTRL_LOAD_PLUGINS")
    if raw is None:
        return None
    return {part.strip() for part in raw.split(",") if part.strip()}


def get_plugin_manager() -> pluggy.PluginManager:
    """A fresh, empty pluggy manager for the ``ttrl`` project, with ttrl's hook specs added."""
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    return manager


def _unknown_hooks(manager: pluggy.PluginManager, plugin: object) -> list[str]:
    unknown = []
    for caller in manager.get_hookcallers(plugin) or []:
        if not caller.has_spec():
            unknown.append(caller.name)
    return unknown


def load_plugins(
    *,
    entry_points: bool = True,
    builtins: Iterable[str] = DEFAULT_PLUGINS,
    extra: Iterable[tuple[str, object]] = (),
    allow: set[str] | None = None,
    strict: bool | None = None,
    warn: bool = True,
) -> PluginSet:
    """Load built-in and installed plugins into a new manager and registry.

    ``extra`` adds ``(name, plugin_object)`` pairs after the entry points (tests and embedding code).
    ``allow`` and ``strict`` default to ``TTRL_LOAD_PLUGINS`` and ``TTRL_STRICT_PLUGINS``.
    """
    if allow is None:
        allow = _env_allowlist()
    if strict is None:
        strict = _env_flag("TTRL_STRICT_PLUGINS")

    manager = get_plugin_manager()
    infos: list[PluginInfo] = []
    registered: list[tuple[object, PluginInfo]] = []

    def add(plugin_object: object, info: PluginInfo) -> None:
        try:
            manager.register(plugin_object, name=info.name)
        except Exception as exc:  # pluggy validation errors, duplicate plugin names
            info.errors.append(f"cannot register: {exc}")
            return
        info.loaded = True
        info.hooks = sorted(c.name for c in manager.get_hookcallers(plugin_object) or [])
        for hook in _unknown_hooks(manager, plugin_object):
            info.errors.append(f"implements unknown hook {hook!r} (known: {', '.join(_REGISTER_HOOKS)})")
        registered.append((plugin_object, info))

    for module_name in builtins:
        info = PluginInfo(name=module_name, module=module_name, distribution="ttrl", version=_ttrl_version(), builtin=True)
        infos.append(info)
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            info.errors.append(f"import failed: {type(exc).__name__}: {exc}")
            continue
        add(module, info)

    if entry_points:
        for ep in sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            dist = getattr(ep, "dist", None)
            dist_name = dist.metadata["Name"] if dist is not None else None
            if allow is not None and ep.name not in allow and (dist_name or "") not in allow:
                continue
            info = PluginInfo(
                name=ep.name,
                module=ep.value,
                distribution=dist_name,
                version=dist.version if dist is not None else None,
            )
            infos.append(info)
            try:
                plugin_object = ep.load()
            except BaseException as exc:  # SystemExit or KeyboardInterrupt-like misuse in a plugin too
                if isinstance(exc, KeyboardInterrupt):
                    raise
                info.errors.append(f"import failed: {type(exc).__name__}: {exc}")
                continue
            add(plugin_object, info)

    for name, plugin_object in extra:
        info = PluginInfo(name=name, module=getattr(plugin_object, "__name__", type(plugin_object).__name__))
        infos.append(info)
        add(plugin_object, info)

    registry = Registry()
    for plugin_object, info in registered:
        _run_register_hooks(manager, plugin_object, info, registry)

    problems = [f"{info.describe()}: {err}" for info in infos for err in info.errors]
    if problems and strict:
        raise PluginError(
            "Plugin problems (TTRL_STRICT_PLUGINS is set): "
            + "; ".join(problems)
            + ". Fix or uninstall the plugin, or unset TTRL_STRICT_PLUGINS to load the others anyway."
        )
    if warn:
        for problem in problems:
            warnings.warn(problem, PluginWarning, stacklevel=2)
    return PluginSet(manager=manager, registry=registry, plugins=infos)


def _run_register_hooks(manager: pluggy.PluginManager, plugin_object: object, info: PluginInfo, registry: Registry) -> None:
    callbacks = {
        "register_extractors": ("extractor", registry.extractor_callback),
        "register_estimators": ("estimator", registry.estimator_callback),
        "register_reward_shapers": ("reward_shaper", registry.shaper_callback),
    }
    for hook_name, (kind, make_callback) in callbacks.items():
        caller = getattr(manager.hook, hook_name)
        for impl in caller.get_hookimpls():
            if impl.plugin is not plugin_object:
                continue
            before = len(registry.rejections)
            table = {"extractor": registry.extractors, "estimator": registry.estimators, "reward_shaper": registry.shapers}[kind]
            names_before = set(table.names())
            try:
                impl.function(register=make_callback(info.name))
            except Exception as exc:
                info.errors.append(f"{hook_name} raised {type(exc).__name__}: {exc}")
            added = sorted(set(table.names()) - names_before)
            if added:
                info.registered.setdefault(kind + "s", []).extend(added)
            for rejection in registry.rejections[before:]:
                info.errors.append(f"{rejection.kind} {rejection.name!r} refused: {rejection.reason}")


@functools.cache
def _ttrl_version() -> str | None:
    try:
        return importlib.metadata.version("ttrl")
    except importlib.metadata.PackageNotFoundError:
        return None


@functools.cache
def default_plugins() -> PluginSet:
    """The plugins of this process, loaded once (CLI and adapters). Tests call :func:`load_plugins`."""
    return load_plugins()

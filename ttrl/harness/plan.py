"""What a bench runs: the estimator specs, the run settings and how to rebuild the plugins."""

from __future__ import annotations

import functools
import importlib
import json
from dataclasses import dataclass
from typing import Any

from ttrl.core.config import ComponentSpec
from ttrl.core.errors import UserError
from ttrl.core.plugins import PluginSet, load_plugins


@dataclass(frozen=True)
class PluginRecipe:
    """How to rebuild the same plugin set in a worker process or on a Ray node.

    ``modules`` are importable module names added as extra plugins (``ttrl bench --plugin MODULE``),
    on top of the built-ins and, when ``entry_points`` is true, every installed ``ttrl`` plugin.
    """

    entry_points: bool = True
    modules: tuple[str, ...] = ()

    def load(self) -> PluginSet:
        return _load_recipe(self)


@functools.cache
def _load_recipe(recipe: PluginRecipe) -> PluginSet:
    extra = []
    for name in recipe.modules:
        try:
            extra.append((name, importlib.import_module(name)))
        except ImportError as exc:
            raise UserError(
                f"--plugin {name!r} cannot be imported ({exc}). Give an importable module name "
                "(on PYTHONPATH in every worker) that implements ttrl hooks."
            ) from None
    return load_plugins(entry_points=recipe.entry_points, extra=extra, warn=False)


@dataclass(frozen=True)
class BenchPlan:
    """Everything a shard job needs besides its groups; picklable, sent once to every worker."""

    specs: tuple[ComponentSpec, ...]
    config: dict[str, Any]  # RunConfig.model_dump(): answers settings and reward shaping
    recipe: PluginRecipe = PluginRecipe()
    keep_details: bool = False  # per-group scores and every reward, for the report's plots

    @property
    def labels(self) -> list[str]:
        return [s.label or s.name for s in self.specs]

    def key(self) -> str:
        """A stable identity of the plan (specs, settings, plugins), for caches and the resume check."""
        return json.dumps(
            {
                "specs": [s.model_dump(mode="json") for s in self.specs],
                "config": self.config,
                "plugins": [self.recipe.entry_points, list(self.recipe.modules)],
                "keep_details": self.keep_details,
            },
            sort_keys=True,
            default=str,
        )

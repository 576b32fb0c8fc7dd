"""``ttrl plugins`` and ``ttrl estimators``: what is installed and registered."""

from __future__ import annotations

import json
from typing import Any

import click
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from ttrl.core.plugins import default_plugins
from ttrl.core.registry import EstimatorInfo


def _type_label(annotation: Any) -> str:
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "").replace("NoneType", "None")


def options_schema(model: type[BaseModel] | None) -> list[dict[str, Any]]:
    """Options of a component: name, type, default (None when required), required, description."""
    if model is None:
        return []
    rows = []
    for name, field in model.model_fields.items():
        if field.default_factory is not None:
            default = field.default_factory()
        elif field.default is PydanticUndefined:
            default = None
        else:
            default = field.default
        if isinstance(default, BaseModel):
            default = default.model_dump(mode="json")
        rows.append(
            {
                "name": name,
                "type": _type_label(field.annotation),
                "default": default,
                "required": field.is_required(),
                "description": field.description or "",
            }
        )
    return rows


def estimator_to_json(info: EstimatorInfo) -> dict[str, Any]:
    requires = sorted(info.requires) if not callable(info.requires) else "depends on options"
    return {
        "name": info.name,
        "aliases": list(info.aliases),
        "plugin": info.plugin,
        "description": info.description,
        "requires": requires,
        "needs": list(info.needs()),
        "options": options_schema(info.options),
    }


def extractor_to_json(info) -> dict[str, Any]:
    return {"name": info.name, "aliases": list(info.aliases), "plugin": info.plugin,
            "description": info.description, "compare": info.compare}


def default_needs(info: EstimatorInfo) -> list[str] | None:
    """What an estimator reads with its default options (None when those cannot be built)."""
    try:
        return sorted(info.required_inputs(info.options() if info.options else None))
    except Exception:  # an options model with required fields
        return None


def _needs(requires, defaults: list[str] | None = None) -> str:
    if requires == "depends on options":
        return ("depends on its options; with the defaults: " + _needs(defaults)) if defaults is not None else "depends on its options"
    named = [("answers (extracted and clustered)" if r == "answers" else f"stats.{r}" if r.startswith("mean_") or r == "num_tokens" else r)
             for r in requires]
    return ", ".join(named) or "nothing beyond the rollout texts"


def _list(rows: list[dict[str, Any]], what: str, as_json: bool) -> None:
    """A listing command's output: the rows as JSON, or the table of :func:`_print_components`."""
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
    else:
        _print_components(rows, what)


def _print_components(rows: list[dict[str, Any]], kind: str, group_by: str | None = None) -> None:
    """Each component as a stacked block: its name whole on its own line, then (indented, wrapped)
    its description, what it needs and each option as ``name: type = default`` over its description."""
    from rich.markup import escape
    from rich.padding import Padding
    from rich.text import Text

    from ttrl.cli.common import stdout_console

    console = stdout_console()

    def indented(text: str, level: int = 1) -> None:
        console.print(Padding(Text(text), (0, 0, 0, 2 * level), expand=False))

    if not rows:
        console.print(f"No {kind} registered.")
    heading = None
    for row in rows:
        if group_by is not None and row[group_by] != heading:
            heading = row[group_by]
            console.rule(f"needs {' + '.join(heading)}" if heading else "needs only the rollout texts")
        aliases = f" (aliases: {', '.join(row['aliases'])})" if row["aliases"] else ""
        console.print(f"[bold]{escape(row['name'])}[/bold]{escape(aliases)}  [dim]plugin: {escape(row['plugin'])}[/dim]")
        if row.get("description"):
            indented(row["description"])
        if "requires" in row:
            indented(f"needs: {_needs(row['requires'], row.get('_defaults'))}")
        if "compare" in row:
            indented(f"compares answers as: {row['compare']}")
        if "options" in row:
            if not row["options"]:
                indented("no options")
            for opt in row["options"]:
                default = "(required)" if opt["required"] else f"= {opt['default']!r}"
                indented(f"--option {opt['name']}: {opt['type']} {default}")
                if opt["description"]:
                    indented(opt["description"], 3)
        console.print()


def register(cli: click.Group) -> None:
    json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output (see docs/cli-json.md).")

    @cli.command()
    @json_option
    def plugins(as_json: bool) -> None:
        """List installed plugins: name, distribution, version, hooks, and load errors."""
        loaded = default_plugins()
        if as_json:
            click.echo(json.dumps([p.to_json() for p in loaded.plugins], indent=2))
            return
        from rich.markup import escape

        from ttrl.cli.common import stdout_console

        console = stdout_console()
        for p in loaded.plugins:
            status = "[red]" + escape("; ".join(p.errors)) + "[/red]" if p.errors else "[green]ok[/green]"
            where = " ".join(x for x in (p.distribution, p.version) if x) or p.module
            console.print(f"[bold]{escape(p.name)}[/bold]  {escape(where)}{'  (built-in)' if p.builtin else ''}  {status}")
            if p.hooks:
                console.print(f"  hooks: {', '.join(p.hooks)}")
            for kind, names in p.registered.items():
                console.print(f"  {kind.replace('_', ' ')}: {escape(', '.join(names))}")

    @cli.command()
    @json_option
    def estimators(as_json: bool) -> None:
        """List registered estimators: name, aliases, plugin, what they need, and options."""
        infos = list(default_plugins().registry.estimators)
        rows = [estimator_to_json(info) for info in infos]
        if as_json:
            click.echo(json.dumps(rows, indent=2, default=str))
            return
        shown = [{**row, "_defaults": default_needs(info)} for row, info in zip(rows, infos)]
        # grouped by what they need, so a user sees at once what their rollout file can feed
        shown.sort(key=lambda row: (len(row["needs"]), row["needs"]))
        _print_components(shown, "estimators", group_by="needs")

    @cli.command()
    @json_option
    def extractors(as_json: bool) -> None:
        """List registered answer extractors (one per task): name, aliases, plugin."""
        _list([extractor_to_json(info) for info in default_plugins().registry.extractors], "extractors", as_json)

    @cli.command("reward-shapers")
    @json_option
    def reward_shapers(as_json: bool) -> None:
        """List registered reward shapers (run config `reward_shaping:`): name, plugin, options."""
        _list([estimator_to_json(info) for info in default_plugins().registry.shapers], "reward shapers", as_json)

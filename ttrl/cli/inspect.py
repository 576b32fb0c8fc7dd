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


def register(cli: click.Group) -> None:
    @cli.command()
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output (see docs/cli-json.md).")
    def plugins(as_json: bool) -> None:
        """List installed plugins: name, distribution, version, hooks, and load errors."""
        loaded = default_plugins()
        if as_json:
            click.echo(json.dumps([p.to_json() for p in loaded.plugins], indent=2))
            return
        from rich.console import Console
        from rich.table import Table

        table = Table(title="ttrl plugins")
        for column in ("name", "distribution", "version", "hooks", "registered", "status"):
            table.add_column(column)
        for p in loaded.plugins:
            registered = "; ".join(f"{k}: {', '.join(v)}" for k, v in p.registered.items())
            status = "[red]" + "; ".join(p.errors) + "[/red]" if p.errors else "[green]ok[/green]"
            table.add_row(p.name, p.distribution or "", p.version or "", ", ".join(p.hooks), registered, status)
        Console(soft_wrap=False).print(table)

    @cli.command()
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output (see docs/cli-json.md).")
    def estimators(as_json: bool) -> None:
        """List registered estimators: name, aliases, plugin, description and options."""
        registry = default_plugins().registry
        rows = [estimator_to_json(info) for info in registry.estimators]
        if as_json:
            click.echo(json.dumps(rows, indent=2, default=str))
            return
        from rich.console import Console
        from rich.table import Table

        console = Console()
        # grouped by what they need, so a user sees at once what their rollout file can feed
        rows.sort(key=lambda row: (len(row["needs"]), row["needs"]))
        heading = None
        for row in rows:
            if row["needs"] != heading:
                heading = row["needs"]
                console.rule(f"needs {' + '.join(heading)}" if heading else "needs only the rollout texts")
            aliases = f" (aliases: {', '.join(row['aliases'])})" if row["aliases"] else ""
            console.print(f"[bold]{row['name']}[/bold]{aliases} — {row['description']}  [dim]plugin: {row['plugin']}[/dim]")
            if row["options"]:
                table = Table(show_header=True, box=None, padding=(0, 2))
                for column in ("option", "type", "default", "description"):
                    table.add_column(column)
                for opt in row["options"]:
                    default = "(required)" if opt["required"] else repr(opt["default"])
                    table.add_row(opt["name"], opt["type"], default, opt["description"])
                console.print(table)
            console.print()

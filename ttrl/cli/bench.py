"""``ttrl bench``: compare estimators on the same rollout groups with CONTRACT.md's metrics."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from ttrl.cli.estimate import parse_option_pairs, warn_line_errors
from ttrl.core.config import ComponentSpec, RunConfig, load_run_config
from ttrl.core.errors import UnknownNameError, UserError
from ttrl.core.estimation import resolve
from ttrl.core.registry import Registry
from ttrl.harness.builtin import builtin_dataset
from ttrl.harness.journal import journal_path
from ttrl.harness.plan import BenchPlan, PluginRecipe
from ttrl.harness.runner import DEFAULT_SHARD_SIZE, run_bench
from ttrl.harness.simulate import parse_sweep, settings_from_pairs
from ttrl.harness.sources import file_dataset, simulated_dataset


def select_specs(config: RunConfig, estimators: str | None, registry: Registry) -> list[ComponentSpec]:
    """Which estimator specs to bench (the merge rule of docs/bench.md).

    The config's ``estimators:`` list (or its single ``estimator:``) supplies options and labels.
    Without ``--estimators`` every config spec runs, or, with no config specs, every registered
    estimator with default options. With ``--estimators A,B`` each item selects the config specs
    whose ``label`` is that item or whose estimator is that name (alias-aware, so one name can pick
    several labelled option sets); an item no config spec matches runs with default options.
    """
    from_config = list(config.estimators)
    path_of = {id(s): ("estimators", i) for i, s in enumerate(from_config)}
    if not from_config and config.estimator is not None:
        from_config = [config.estimator]
        path_of = {id(config.estimator): ("estimator",)}

    def canonical(name: str) -> str | None:
        return registry.estimators.get(name).name if name in registry.estimators else None

    if estimators is None:
        chosen = from_config or [ComponentSpec(name=n) for n in registry.estimators.names()]
    else:
        items = [x.strip() for x in estimators.split(",") if x.strip()]
        if not items:
            raise UserError("--estimators is empty. Example: --estimators majority_vote,dare")
        chosen = []
        for item in items:
            matches = [s for s in from_config if s.label == item] or [
                s for s in from_config if canonical(item) is not None and canonical(s.name) == canonical(item)
            ]
            if not matches:
                # unknown names fail here, with "did you mean"; aliases become the canonical name
                matches = [ComponentSpec(name=registry.estimators.get(item).name)]
            chosen.extend(m for m in matches if all(m != c for c in chosen))
    specs, seen = [], {}
    for spec in chosen:
        # options are checked here, where the config's file:line is still known
        resolve(registry.estimators, spec, locate=config.locate, path=path_of.get(id(spec), ()))
        label = spec.label or spec.name
        if label in seen:
            raise UserError(
                f"Estimator label {label!r} appears twice. To compare one estimator under several option "
                "sets, give each spec a distinct `label:` in the config's `estimators:` list."
            )
        seen[label] = spec
        specs.append(spec.model_copy(update={"label": label}))
    if not specs:
        raise UserError("No estimators to bench. Pass --estimators A,B or list them under `estimators:` in --config.")
    return specs


def _progress(total: int, description: str):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("groups"), TimeElapsedColumn(),
        console=console, transient=True, disable=not console.is_terminal,
    )
    task = progress.add_task(description, total=total)
    return progress, (lambda n: progress.advance(task, n))


def _stdout_console():
    from rich.console import Console

    console = Console()
    # piped output (CI logs, files) gets the whole table rather than 80 squeezed columns
    return console if console.is_terminal else Console(width=160)


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _executor(workers: int | None, ray_address: str | None):
    if workers is not None and ray_address is not None:
        raise UserError("Choose one of --workers N and --ray [ADDRESS].")
    if ray_address is not None:
        from ttrl.harness.scaleout import RayExecutor

        return RayExecutor(ray_address)
    if workers is not None and workers != 1:
        from ttrl.harness.scaleout import ProcessExecutor

        return ProcessExecutor(workers)
    return None


def register(cli: click.Group) -> None:
    @cli.command()
    @click.option("--data", "data_path", type=click.Path(path_type=Path), help="Rollout file (JSONL). Default: the built-in set.")
    @click.option("--estimators", help="Comma-separated estimator names or config labels. Default: all config specs, else all registered.")
    @click.option("--config", "config_path", type=click.Path(path_type=Path), help="Run config (YAML) with an `estimators:` list of specs.")
    @click.option("--output", "output_path", type=click.Path(path_type=Path), help="Results JSON (CONTRACT.md shape).")
    @click.option("--report", "report_dir", type=click.Path(path_type=Path), help="Directory for report.md and PNG plots.")
    @click.option("--simulate", is_flag=True, help="Bench on seeded synthetic groups (knobs: --sim).")
    @click.option("--sim", "sim_pairs", multiple=True, metavar="KNOB=VALUE", help="Simulation knob, e.g. correlation=0.5; repeatable.")
    @click.option("--sweep", "sweep_spec", metavar="KNOB=START:STOP:COUNT", help="Rerun the simulation over a knob's values and plot.")
    @click.option("--workers", type=int, help="Local worker processes.")
    @click.option("--ray", "ray_address", is_flag=False, flag_value="local", default=None, metavar="[ADDRESS]",
                  help="Run shards on Ray: a cluster ADDRESS, or a local instance when none is given.")
    @click.option("--resume", is_flag=True, help="Finish an interrupted run with the same --output.")
    @click.option("--shard-size", default=DEFAULT_SHARD_SIZE, show_default=True, help="Groups per unit of work (and of --resume).")
    @click.option("--plugin", "plugin_modules", multiple=True, metavar="MODULE",
                  help="Extra plugin module to load (importable in workers too); repeatable.")
    @click.option("--strict", is_flag=True, help="Stop at the first malformed data line instead of skipping it.")
    def bench(data_path, estimators, config_path, output_path, report_dir, simulate, sim_pairs, sweep_spec,
              workers, ray_address, resume, shard_size, plugin_modules, strict) -> None:
        """Run several estimators on the same groups and compare label and reward quality.

        Metrics and the results JSON are those of CONTRACT.md; selection rules, simulation knobs,
        scale-out and --resume are described in docs/bench.md.
        """
        config = load_run_config(config_path) if config_path else RunConfig()
        recipe = PluginRecipe(modules=tuple(plugin_modules))
        plugins = recipe.load()
        for problem in plugins.problems():
            click.echo(f"Warning: {problem}", err=True)
        registry = plugins.registry
        specs = select_specs(config, estimators, registry)
        plan = BenchPlan(
            specs=tuple(specs), config=config.model_dump(mode="json"), recipe=recipe,
            keep_details=report_dir is not None and sweep_spec is None,
        )
        if data_path is not None and (simulate or sweep_spec or sim_pairs):
            raise UserError("--data and --simulate/--sim/--sweep exclude each other: bench either a file or a simulation.")
        if sweep_spec:
            return _sweep(plan, sweep_spec, sim_pairs, output_path, report_dir, workers, ray_address, shard_size, resume)
        if simulate or sim_pairs:
            settings = settings_from_pairs(parse_option_pairs(sim_pairs))
            data = simulated_dataset(settings, note=f"Simulated groups ({settings.groups} x {settings.rollouts}, seed {settings.seed}).")
        elif data_path is not None:
            data, line_errors = file_dataset(data_path, strict=strict)
            warn_line_errors(line_errors)
        else:
            data, _ = builtin_dataset()
        if data.note:
            click.echo(f"Note: {data.note}", err=True)
        if not len(data):
            raise UserError(f"{data.path} has no groups to bench.")
        progress, advance = _progress(len(data), "bench")
        with progress:
            outcome = run_bench(plan, data, executor=_executor(workers, ray_address), shard_size=shard_size,
                                output=output_path, resume=resume, on_progress=advance)
        return _finish(outcome, output_path, report_dir)


def _finish(outcome, output_path: Path | None, report_dir: Path | None) -> int:
    from rich.console import Console

    from ttrl.harness.report import rich_table, write_report

    results = outcome.results
    _stdout_console().print(rich_table(results))
    failures = 0
    for entry in results["estimators"]:
        label = entry.get("label") or entry["name"]
        if entry.get("skipped"):
            click.echo(f"{label}: {entry['skipped']}", err=True)
        for err in entry["errors"]:
            click.echo(f"Error: estimator {label!r} failed on group {err['group']!r}: {err['error']}", err=True)
        if entry["failed_groups"] > len(entry["errors"]):
            click.echo(f"Error: ... {label!r} failed on {entry['failed_groups']} group(s) in all.", err=True)
        failures += entry["failed_groups"]
    if output_path is not None:
        _write_json(output_path, results)
        journal_path(output_path).unlink(missing_ok=True)
        click.echo(f"Wrote {output_path}", err=True)
    if report_dir is not None:
        click.echo(f"Wrote {write_report(results, outcome.details, report_dir)}", err=True)
    # like `ttrl estimate`: results are complete, but a failing estimator is a bug worth a non-zero status
    return 1 if failures else 0


def _sweep(plan, sweep_spec, sim_pairs, output_path, report_dir, workers, ray_address, shard_size, resume) -> int:
    from rich.console import Console
    from rich.table import Table

    from ttrl.harness.report import format_value, write_sweep_report

    if resume:
        raise UserError("--resume does not apply to --sweep: a sweep's runs are short; rerun it.")
    knob, values = parse_sweep(sweep_spec)
    base = settings_from_pairs(parse_option_pairs(sim_pairs))
    runs = []
    progress, advance = _progress(base.groups * len(values), f"sweep {knob}")
    with progress:
        for value in values:
            settings = settings_from_pairs({knob: value}, base)
            outcome = run_bench(plan, simulated_dataset(settings), executor=_executor(workers, ray_address),
                                shard_size=shard_size, on_progress=advance)
            runs.append({"value": value, "results": outcome.results})
    sweep = {"sweep": {"knob": knob, "values": values, "simulation": base.model_dump()}, "runs": runs}
    table = Table(title=f"ttrl bench sweep over {knob} (simulation, {base.groups} x {base.rollouts}, seed {base.seed})")
    table.add_column("estimator")
    table.add_column("metric")
    for v in values:
        table.add_column(f"{v:g}", justify="right")
    for i, entry in enumerate(runs[0]["results"]["estimators"]):
        for metric in ("label_accuracy", "pairwise_accuracy"):
            table.add_row(entry["label"], metric, *[format_value(metric, r["results"]["estimators"][i]["metrics"][metric]) for r in runs])
    _stdout_console().print(table)
    report_dir = report_dir or Path("ttrl-bench-sweep")
    click.echo(f"Wrote {write_sweep_report(sweep, report_dir)} and its plot", err=True)
    if output_path is not None:
        _write_json(output_path, sweep)
        click.echo(f"Wrote {output_path}", err=True)
    return 0

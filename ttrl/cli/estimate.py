"""``ttrl estimate``: run one estimator over a rollout file and write an estimate file."""

from __future__ import annotations

import time
from pathlib import Path

import click

from ttrl.cli.common import (
    ProgressBar, check_paths, load_cli_plugins, on_interrupt, parse_option_pairs, warn_line_errors,
)
from ttrl.core.config import ComponentSpec, RunConfig, load_run_config
from ttrl.core.data import Estimate
from ttrl.core.errors import EstimatorFailure, UserError
from ttrl.core.estimation import EstimationPipeline
from ttrl.core.rollout_files import atomic_write, dumps_line, estimate_to_json, read_rollout_file


def selected_spec(config: RunConfig, name: str | None, option_pairs: tuple[str, ...]) -> ComponentSpec:
    """The estimator spec from ``--estimator``/``--option`` over the run config's ``estimator:``."""
    base = config.estimator
    cli_options = parse_option_pairs(option_pairs)
    if name is None:
        if base is None:
            raise UserError("No estimator selected. Pass --estimator NAME (see `ttrl estimators`) or --config RUN.yaml.")
        return base.model_copy(update={"options": {**base.options, **cli_options}})
    inherited = base.options if base is not None and base.name == name else {}
    return ComponentSpec(name=name, options={**inherited, **cli_options})


def _failure_line(group, estimator: str, reason: str) -> str:
    return dumps_line(estimate_to_json(group.id, estimator, Estimate.failure(len(group.rollouts), reason)))


def register(cli: click.Group) -> None:
    @cli.command()
    @click.option("--data", "data_path", required=True, type=click.Path(path_type=Path), help="Rollout file (JSON Lines; docs/formats.md).")
    @click.option("--estimator", "estimator_name", help="Estimator name or alias (see `ttrl estimators`).")
    @click.option("--option", "option_pairs", multiple=True, metavar="KEY=VALUE", help="Estimator option; repeatable.")
    @click.option("--config", "config_path", type=click.Path(path_type=Path), help="Run config (YAML).")
    @click.option("--output", "output_path", required=True, type=click.Path(path_type=Path),
                  help="Estimate file to write (written whole at the end; docs/formats.md).")
    @click.option("--plugin", "plugin_modules", multiple=True, metavar="MODULE",
                  help="Extra plugin module to load, as for `ttrl bench`; repeatable.")
    @click.option("--strict", is_flag=True, help="Stop at the first malformed line instead of skipping it.")
    def estimate(data_path, estimator_name, option_pairs, config_path, output_path, plugin_modules, strict) -> None:
        """Estimate labels and rewards for every group of a rollout file."""
        check_paths(inputs=[("--data", data_path), ("--config", config_path)], files=[("--output", output_path)])
        config = load_run_config(config_path) if config_path else RunConfig()
        _, plugins = load_cli_plugins(plugin_modules)
        spec = selected_spec(config, estimator_name, option_pairs)
        pipeline = EstimationPipeline.from_config(config, plugins.registry, spec)
        read = read_rollout_file(data_path, strict=strict)
        warn_line_errors(read.errors, read.empty)
        for record in read.records:
            pipeline.check_inputs(record.group)
        name = pipeline.estimator.name
        failures = 0
        start = time.perf_counter()
        with on_interrupt(f"Nothing was written to {output_path} (its previous content, if any, is untouched): "
                          "the estimate file is written whole at the end. Run the command again."), \
                ProgressBar(len(read.records), "groups", f"estimate ({name})") as bar, \
                atomic_write(output_path) as out:
            for record in read.records:
                group = record.group
                try:
                    line = dumps_line(estimate_to_json(group.id, name, pipeline.run(group)))
                except EstimatorFailure as exc:
                    failures += 1
                    click.echo(f"Error: {exc}", err=True)
                    line = _failure_line(group, name, exc.reason)
                except ValueError as exc:  # a result that cannot be written as JSON fails its own line
                    failures += 1
                    click.echo(f"Error: estimator {name!r} returned a result for group {group.id!r} that {exc}", err=True)
                    line = _failure_line(group, name, str(exc))
                out.write(line)
                bar.advance(1)
        seconds = time.perf_counter() - start
        left_out = [f"{len(read.errors)} malformed line(s)"] * bool(read.errors) + [f"{len(read.empty)} group(s) without rollouts"] * bool(read.empty)
        click.echo(
            f"Wrote {len(read.records)} estimate(s) to {output_path} with {name} in {seconds:.2f}s"
            + (f"; left out {' and '.join(left_out)}" if left_out else ""),
            err=True,
        )
        if failures:
            raise click.exceptions.Exit(1)

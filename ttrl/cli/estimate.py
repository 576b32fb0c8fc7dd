"""``ttrl estimate``: run one estimator over a rollout file and write an estimate file."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click
import yaml

from ttrl.core.config import ComponentSpec, RunConfig, load_run_config
from ttrl.core.data import Estimate
from ttrl.core.errors import EstimatorFailure, UserError
from ttrl.core.estimation import EstimationPipeline
from ttrl.core.plugins import default_plugins
from ttrl.core.rollout_files import estimate_to_json, read_rollout_file, write_json_line


def parse_option_pairs(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs from the command line; values are YAML scalars (0.5, true, [1, 2], text)."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--option {pair!r} is not KEY=VALUE. Example: --option alpha=0.5")
        try:
            options[key.strip()] = yaml.safe_load(value) if value.strip() else ""
        except yaml.YAMLError:
            options[key.strip()] = value
    return options


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


def warn_line_errors(errors, limit: int = 20) -> None:
    for error in errors[:limit]:
        click.echo(f"Warning: skipped {error}", err=True)
    if len(errors) > limit:
        click.echo(f"Warning: ... and {len(errors) - limit} more malformed line(s)", err=True)


def register(cli: click.Group) -> None:
    @cli.command()
    @click.option("--data", "data_path", required=True, type=click.Path(path_type=Path), help="Rollout file (JSONL).")
    @click.option("--estimator", "estimator_name", help="Estimator name or alias (see `ttrl estimators`).")
    @click.option("--option", "option_pairs", multiple=True, metavar="KEY=VALUE", help="Estimator option; repeatable.")
    @click.option("--config", "config_path", type=click.Path(path_type=Path), help="Run config (YAML).")
    @click.option("--output", "output_path", required=True, type=click.Path(path_type=Path), help="Estimate file to write.")
    @click.option("--strict", is_flag=True, help="Stop at the first malformed line instead of skipping it.")
    def estimate(data_path, estimator_name, option_pairs, config_path, output_path, strict) -> None:
        """Estimate labels and rewards for every group of a rollout file."""
        config = load_run_config(config_path) if config_path else RunConfig()
        registry = default_plugins().registry
        spec = selected_spec(config, estimator_name, option_pairs)
        pipeline = EstimationPipeline.from_config(config, registry, spec)
        read = read_rollout_file(data_path, strict=strict)
        warn_line_errors(read.errors)
        for record in read.records:
            pipeline.check_inputs(record.group)
        failures = 0
        start = time.perf_counter()
        with output_path.open("w", encoding="utf-8") as out:
            for record in read.records:
                try:
                    result = pipeline.run(record.group)
                except EstimatorFailure as exc:
                    failures += 1
                    click.echo(f"Error: {exc}", err=True)
                    result = Estimate.failure(len(record.group.rollouts), exc.reason)
                write_json_line(out, estimate_to_json(record.group.id, pipeline.estimator.name, result))
        seconds = time.perf_counter() - start
        click.echo(
            f"Wrote {len(read.records)} estimate(s) to {output_path} with {pipeline.estimator.name} "
            f"in {seconds:.2f}s" + (f"; skipped {len(read.errors)} malformed line(s)" if read.errors else ""),
            err=True,
        )
        if failures:
            raise click.exceptions.Exit(1)

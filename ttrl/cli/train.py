"""``ttrl train --config RUN.yaml [--dry-run]``: test-time RL with the selected estimator.

The run config's ``trainer:`` picks an adapter module; each adapter exposes
``launch(config: RunConfig, *, config_path: Path, dry_run: bool) -> int`` and validates its own section
(``openrlhf:``, ``trl:`` or ``verl:``) before anything heavy starts.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import click

from ttrl.cli.common import on_interrupt
from ttrl.core.config import load_run_config
from ttrl.core.errors import UserError

TRAINERS = {
    "openrlhf": "ttrl.adapters.openrlhf",
    "trl": "ttrl.adapters.trl",
    "verl": "ttrl.adapters.verl",
}


def register(cli: click.Group) -> None:
    @cli.command()
    @click.option("--config", "config_path", required=True, type=click.Path(path_type=Path), help="Run config (YAML).")
    @click.option("--dry-run", is_flag=True, help="Print the resolved trainer configuration and start nothing.")
    def train(config_path: Path, dry_run: bool) -> None:
        """Train a model with test-time RL, rewarded by the selected estimator."""
        config = load_run_config(config_path)
        if config.trainer is None:
            raise UserError(
                f"Run config {config_path} has no `trainer:`. Set it to one of: {', '.join(TRAINERS)}."
            )
        module_name = TRAINERS.get(config.trainer.strip().lower())
        if module_name is None:
            where = config.locate(("trainer",)) or str(config_path)
            raise UserError(
                f"Unknown trainer {config.trainer!r} ({where}). Available: {', '.join(TRAINERS)}."
            )
        adapter = importlib.import_module(module_name)
        with on_interrupt("Training stopped. Checkpoints the trainer saved so far stay in its output folder "
                          f"(docs/{config.trainer.strip().lower()}.md says where and how to continue)."):
            code = adapter.launch(config, config_path=config_path, dry_run=dry_run)
        if code:
            raise click.exceptions.Exit(code)

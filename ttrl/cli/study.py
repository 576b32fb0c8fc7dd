"""``ttrl study --config STUDY.yaml [--out DIR] [--quick]``: arms trained on the same problems, compared on held-out ones."""

from __future__ import annotations

from pathlib import Path

import click

from ttrl.cli.common import on_interrupt


def register(cli: click.Group) -> None:
    @cli.command()
    @click.option("--config", "config_path", required=True, type=click.Path(path_type=Path), help="Study config (YAML).")
    @click.option("--out", "out_dir", type=click.Path(path_type=Path), default=None,
                  help="Results folder (default: runs/study next to the config; runs/study-quick with --quick).")
    @click.option("--quick", is_flag=True, help="A few steps on a few problems: checks the machinery, not the outcome.")
    def study(config_path: Path, out_dir: Path | None, quick: bool) -> None:
        """Train every arm of a study (resumable) and compare them on held-out problems."""
        from ttrl.study import run_study, markdown_table

        if out_dir is None:
            out_dir = config_path.resolve().parent / "runs" / ("study-quick" if quick else "study")
        if out_dir.exists() and not out_dir.is_dir():
            raise click.BadParameter(f"{out_dir} exists and is not a folder.", param_hint="--out")
        with on_interrupt(f"Finished runs are saved in {out_dir / 'runs'}; run the same command again to continue."):
            summary = run_study(config_path, out_dir, quick=quick)
        click.echo(markdown_table(summary), nl=False)
        click.echo(f"Results: {out_dir / 'study.json'}, {out_dir / 'study.md'}, plots {out_dir}/*.png", err=True)

"""The ``ttrl`` command line. Each command lives in its own module; ``main`` turns user errors into
one-paragraph messages with exit status 2 (``TTRL_DEBUG=1`` shows the traceback)."""

from __future__ import annotations

import importlib
import os
import sys
import traceback
import warnings

import click

from ttrl.core.errors import EstimatorFailure, UserError
from ttrl.core.plugins import PluginWarning

#: Modules that each define ``register(cli)`` adding their commands to the group.
COMMAND_MODULES = (
    "ttrl.cli.inspect",
    "ttrl.cli.estimate",
    "ttrl.cli.train",
    "ttrl.cli.rollouts",
    "ttrl.cli.bench",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="ttrl", prog_name="ttrl")
def cli() -> None:
    """ttrl: pluggable reward estimation for label-free (test-time) RL of language models."""


for _module in COMMAND_MODULES:
    importlib.import_module(_module).register(cli)


def debug_enabled() -> bool:
    return os.environ.get("TTRL_DEBUG", "").strip() not in {"", "0"}


def _show_warning(message, category, filename, lineno, file=None, line=None):  # noqa: ARG001
    if issubclass(category, PluginWarning):
        click.echo(f"Warning: {message}", err=True)
    else:
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def main(argv: list[str] | None = None) -> None:
    warnings.showwarning = _show_warning
    try:
        result = cli.main(args=argv, prog_name="ttrl", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    except UserError as exc:
        if debug_enabled():
            traceback.print_exc()
        click.echo(f"Error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except EstimatorFailure as exc:
        if debug_enabled():
            traceback.print_exc()
        click.echo(f"Error: {exc}. This is a bug in the estimator's plugin; TTRL_DEBUG=1 shows the traceback.", err=True)
        sys.exit(1)
    sys.exit(result if isinstance(result, int) else 0)

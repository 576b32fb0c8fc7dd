"""The ``ttrl`` command line. Each command lives in its own module; ``main`` turns user errors into
one-paragraph messages with exit status 2 (``TTRL_DEBUG=1`` shows the traceback) and Ctrl-C into one
message saying what was saved and how to go on (:mod:`ttrl.cli.common`).

Commands are imported on first use, after the ``TTRL_*`` environment has been checked, so a bad
variable is reported as such even by ``ttrl --help``.
"""

from __future__ import annotations

import importlib
import sys
import traceback
import warnings

import click

from ttrl.core.env import check_environment, env_flag
from ttrl.core.errors import EstimatorFailure, Interrupted, UserError

#: Modules that each define ``register(cli)`` adding their commands to the group.
COMMAND_MODULES = (
    "ttrl.cli.inspect",
    "ttrl.cli.estimate",
    "ttrl.cli.train",
    "ttrl.cli.rollouts",
    "ttrl.cli.bench",
    "ttrl.cli.study",
)


class _Commands(click.Group):
    """The ``ttrl`` group; its command modules are imported when a command is first looked up."""

    _registered = False

    def _register(self) -> None:
        if not self._registered:
            self._registered = True
            for module in COMMAND_MODULES:
                importlib.import_module(module).register(self)

    def list_commands(self, ctx):
        self._register()
        return super().list_commands(ctx)

    def get_command(self, ctx, name):
        self._register()
        return super().get_command(ctx, name)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="ttrl", prog_name="ttrl")
def cli() -> None:
    """ttrl: pluggable reward estimation for label-free (test-time) RL of language models."""


def debug_enabled() -> bool:
    try:
        return env_flag("TTRL_DEBUG")
    except UserError:
        return False


def _show_warning(message, category, filename, lineno, file=None, line=None):  # noqa: ARG001
    from ttrl.core.plugins import PluginWarning

    if issubclass(category, PluginWarning):
        click.echo(f"Warning: {message}", err=True)
    else:
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def _fail(exc: BaseException, message: str, code: int):
    if debug_enabled():
        traceback.print_exception(exc)
    click.echo(message, err=True)
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    warnings.showwarning = _show_warning
    try:
        for warning in check_environment():
            click.echo(f"Warning: {warning}", err=True)
        result = cli.main(args=argv, prog_name="ttrl", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except (click.exceptions.Abort, KeyboardInterrupt) as exc:  # outside any command's on_interrupt block
        _fail(exc, "Interrupted. Nothing was saved.", 130)
    except Interrupted as exc:
        _fail(exc, str(exc), exc.exit_code)
    except UserError as exc:
        _fail(exc, f"Error: {exc}", exc.exit_code)
    except EstimatorFailure as exc:
        _fail(exc, f"Error: {exc}. This is a bug in the estimator's plugin; TTRL_DEBUG=1 shows the traceback.", 1)
    sys.exit(result if isinstance(result, int) else 0)

"""What every command does the same way, decided once: paths, plugins, progress, interrupts, consoles.

* Paths (:func:`check_paths`): before any work starts, an output that is an input, a missing folder,
  a file where a folder is wanted (or the reverse) and a location that cannot be written are user
  errors with one wording in every command. The output itself is created; the folder it goes in
  must exist. Whole files are written through :func:`ttrl.core.rollout_files.atomic_write`.
* Interrupts (:func:`on_interrupt`): a command says what Ctrl-C would leave saved and how to go on;
  ``ttrl.cli.main`` prints it, once, for every command.
* Progress (:class:`ProgressBar`): on a terminal, work that takes longer than a moment shows a bar on
  stderr; short work and piped output stay quiet.
* Consoles (:func:`stdout_console`): the terminal's width, or 100 columns when piped, in every command.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
import yaml

from ttrl.core.errors import Interrupted, UserError

#: Width of piped output (files, CI logs), the same in every command.
PIPED_WIDTH = 100


# -- paths -------------------------------------------------------------------------------------------

def _same_path(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


def _check_writable_folder(folder: Path, option: str, path: Path) -> None:
    if not folder.exists():
        raise UserError(
            f"The folder {folder} of {option} {path} does not exist. Create it first (mkdir -p {folder}) "
            "or choose another path."
        )
    if not folder.is_dir():
        raise UserError(f"{option} {path}: {folder} is a file, not a folder. Choose another path.")
    try:
        handle, probe = tempfile.mkstemp(prefix=".ttrl-write-check-", dir=folder)
    except OSError as exc:
        raise UserError(f"Cannot write in {folder} ({option} {path}): {exc.strerror}. Choose another path.") from None
    os.close(handle)
    os.unlink(probe)


def check_paths(
    *,
    inputs: Sequence[tuple[str, Path | None]] = (),
    files: Sequence[tuple[str, Path | None]] = (),
    folders: Sequence[tuple[str, Path | None]] = (),
) -> None:
    """The one rule for output paths, checked before any work starts.

    ``inputs`` are (option, path) pairs that are read; ``files`` are output files and ``folders``
    output folders (``--report``). An output may not be an input; an output file may not be a folder
    and an output folder not a file; the folder an output goes in must exist and be writable.
    """
    outputs = [(opt, Path(p), "file") for opt, p in files if p is not None]
    outputs += [(opt, Path(p), "folder") for opt, p in folders if p is not None]
    for opt, path, kind in outputs:
        for in_opt, source in inputs:
            if source is not None and _same_path(path, Path(source)):
                raise UserError(
                    f"{opt} {path} is the same file as {in_opt} {source}: writing it would destroy the input. "
                    f"Choose another {opt}."
                )
        if kind == "file":
            if path.is_dir():
                raise UserError(f"{opt} {path} is a folder; give a file name, e.g. {opt} {path / 'out.jsonl'}.")
            if path.exists() and not os.access(path, os.W_OK):
                raise UserError(f"Cannot write {opt} {path}: it is read-only. Choose another path.")
            if path.exists() and not path.is_file():
                continue  # /dev/null, a named pipe: written in place, nothing is created beside it
            _check_writable_folder(path.parent, opt, path)
        else:
            if path.exists() and not path.is_dir():
                raise UserError(f"{opt} {path} is a file; {opt} takes a folder (it is created when missing).")
            _check_writable_folder(path if path.is_dir() else path.parent, opt, path)
    seen: dict[Path, str] = {}
    for opt, path, _ in outputs:
        key = path.resolve()
        if key in seen:
            raise UserError(f"{seen[key]} and {opt} name the same path {path}; give each its own.")
        seen[key] = opt


# -- interrupts --------------------------------------------------------------------------------------

@contextmanager
def on_interrupt(note: str | Callable[[], str]):
    """While the block runs, Ctrl-C stops the command with ``note``: what is saved and how to go on.

    The note is computed when the interrupt arrives (a callable sees the progress made so far); the
    innermost block wins. ``ttrl.cli.main`` prints it and exits with status 130.
    """
    try:
        yield
    except KeyboardInterrupt:
        raise Interrupted(f"Interrupted. {note() if callable(note) else note}") from None


# -- progress ----------------------------------------------------------------------------------------

class ProgressBar:
    """A bar on stderr for ``total`` units, shown only on a terminal and only once work has lasted
    ``delay`` seconds: short work stays quiet. ``advance(n, **fields)`` moves it; use as a context."""

    def __init__(self, total: int, unit: str, description: str, *, delay: float = 0.5,
                 extra: str = "", fields: dict[str, Any] | None = None, quiet: bool = False):
        from rich.console import Console

        self.console = Console(stderr=True)
        self.enabled = self.console.is_terminal and total > 0 and not quiet
        self.total, self.unit, self.description, self.delay = total, unit, description, delay
        self.extra, self.fields = extra, dict(fields or {})
        self.done = 0
        self._progress = None
        self._task = None
        self._started_at = time.monotonic()

    def _start(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        columns = [TextColumn(self.description), BarColumn(), MofNCompleteColumn(), TextColumn(self.unit)]
        if self.extra:
            columns.append(TextColumn(self.extra))
        columns.append(TimeElapsedColumn())
        self._progress = Progress(*columns, console=self.console, transient=True)
        self._task = self._progress.add_task(self.description, total=self.total, completed=self.done, **self.fields)
        self._progress.start()

    def advance(self, n: int = 1, **fields: Any) -> None:
        self.done += n
        self.fields.update(fields)
        if not self.enabled:
            return
        if self._progress is None:
            if time.monotonic() - self._started_at < self.delay or self.done >= self.total:
                return
            self._start()
        self._progress.update(self._task, completed=self.done, **fields)

    def __enter__(self) -> ProgressBar:
        self._started_at = time.monotonic()
        if self.enabled and self.delay <= 0:
            self._start()
        return self

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.stop()


# -- consoles and messages ---------------------------------------------------------------------------

def stdout_console():
    """The console every command prints tables with: the terminal's width, or PIPED_WIDTH when piped."""
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=int(os.environ.get("COLUMNS") or PIPED_WIDTH))


def warn_line_errors(errors: Iterable[Any], empty: Iterable[Any] = (), limit: int = 20) -> None:
    """Malformed lines (skipped) and empty groups (left out), as every command reports them."""
    errors, empty = list(errors), list(empty)
    for error in errors[:limit]:
        click.echo(f"Warning: skipped {error}", err=True)
    if len(errors) > limit:
        click.echo(f"Warning: ... and {len(errors) - limit} more malformed line(s)", err=True)
    for note in empty[:limit]:
        click.echo(f"Note: left out {note} (nothing to estimate or score)", err=True)
    if len(empty) > limit:
        click.echo(f"Note: ... and {len(empty) - limit} more group(s) without rollouts left out", err=True)


def parse_option_pairs(pairs: Sequence[str], flag: str = "--option") -> dict[str, Any]:
    """``KEY=VALUE`` pairs from the command line; values are YAML scalars (0.5, true, [1, 2], text)."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UserError(f"{flag} {pair!r} is not KEY=VALUE. Example: {flag} alpha=0.5")
        try:
            options[key.strip()] = yaml.safe_load(value) if value.strip() else ""
        except yaml.YAMLError:
            options[key.strip()] = value
    return options


def load_cli_plugins(modules: Sequence[str] = ()):
    """The plugin set of a command: built-ins, installed entry points and ``--plugin`` modules;
    problems are printed as warnings (or raised under TTRL_STRICT_PLUGINS)."""
    from ttrl.harness.plan import PluginRecipe

    recipe = PluginRecipe(modules=tuple(modules))
    plugins = recipe.load()
    for problem in plugins.problems():
        click.echo(f"Warning: {problem}", err=True)
    return recipe, plugins

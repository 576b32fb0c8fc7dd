"""The rollout set ``ttrl bench`` uses without ``--data``.

Real rollouts ship as ``ttrl/data/builtin_rollouts.jsonl`` (package data). A build without that file
falls back to a seeded simulation set and says so in the output, so nobody mistakes simulated numbers
for a model's.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ttrl.core.data import GroupRecord
from ttrl.core.errors import DataFileError
from ttrl.core.rollout_files import parse_raw_line, read_rollout_file

from .runner import DataSet, GroupSlice
from .simulate import SimulationSettings, simulate

BUILTIN_ROLLOUTS = Path(__file__).resolve().parents[1] / "data" / "builtin_rollouts.jsonl"
#: The fallback set: 200 groups x 16 rollouts, half the problems solved on average.
FALLBACK_SIMULATION = SimulationSettings(groups=200, rollouts=16, seed=0)


@dataclass(frozen=True)
class SimulationSlice(GroupSlice):
    """Groups ``start:stop`` of a simulation: each group has its own random stream, so a worker
    simulates exactly the groups the whole set has there."""

    settings: SimulationSettings
    start: int
    stop: int
    anywhere = True

    def load(self) -> list[GroupRecord]:
        return simulate(self.settings, self.start, self.stop)


@dataclass(frozen=True)
class SimulationSource:
    settings: SimulationSettings

    @property
    def groups(self) -> int:
        return self.settings.groups

    def slice(self, start: int, stop: int) -> SimulationSlice:
        return SimulationSlice(self.settings, start, stop)


@dataclass(frozen=True)
class FileSlice(GroupSlice):
    """Some lines of a rollout file (those that held good groups when the file was read), by byte range."""

    path: str  # as given, so that each record's ``source`` reads "path:line" as when the file was read
    resolved: str
    size: int
    mtime_ns: int
    offset: int  # byte offset of line ``lines[0]``
    end: int
    lines: tuple[int, ...]

    def load(self) -> list[GroupRecord]:
        try:
            stat = os.stat(self.resolved)
            changed = (stat.st_size, stat.st_mtime_ns) != (self.size, self.mtime_ns)
        except OSError:
            changed = True
        if changed:
            raise DataFileError(f"{self.path} changed or vanished while the bench ran; rerun it on a file that stays put.")
        with open(self.resolved, "rb") as handle:
            handle.seek(self.offset)
            chunk = handle.read(self.end - self.offset)
        raws = chunk.split(b"\n")
        first = self.lines[0]
        # the same parse as read_rollout_file; these lines were good then and the file is unchanged
        return [parse_raw_line(raws[n - first], n, f"{self.path}:{n}") for n in self.lines]


class FileSource:
    """Where each group of a rollout file is, so a local worker reads its own shards' lines."""

    def __init__(self, path: Path, records: list[GroupRecord], size: int, mtime_ns: int):
        self.path, self.resolved = str(path), str(path.resolve())
        self.size, self.mtime_ns = size, mtime_ns
        self.line_numbers = [int(r.source.rpartition(":")[2]) for r in records]  # sources read "path:line"
        self._starts: np.ndarray | None = None

    @property
    def groups(self) -> int:
        return len(self.line_numbers)

    def _line_starts(self) -> np.ndarray:
        """Byte offset of the start of every line (1-based line n starts at ``starts[n - 1]``)."""
        if self._starts is None:
            newlines, base = [np.zeros(1, dtype=np.int64)], 0
            with open(self.resolved, "rb") as handle:
                while chunk := handle.read(1 << 24):
                    newlines.append(np.flatnonzero(np.frombuffer(chunk, dtype=np.uint8) == 10) + base + 1)
                    base += len(chunk)
            self._starts = np.concatenate(newlines)
        return self._starts

    def slice(self, start: int, stop: int) -> FileSlice:
        starts = self._line_starts()
        lines = tuple(self.line_numbers[start:stop])
        end = int(starts[lines[-1]]) if lines[-1] < len(starts) else self.size
        return FileSlice(self.path, self.resolved, self.size, self.mtime_ns, int(starts[lines[0] - 1]), end, lines)


def file_dataset(path: Path, *, strict: bool = False, note: str | None = None):
    """A rollout file as a :class:`DataSet`, plus its malformed-line errors (reported, not fatal).

    The whole file is read here (malformed lines and duplicate ids are found only that way); local
    worker processes then read their own shards' lines again rather than being sent the groups.
    """
    stat = path.stat() if path.exists() else None
    read = read_rollout_file(path, strict=strict)
    stat = stat or path.stat()
    identity = f"file:{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    source = FileSource(path, read.records, stat.st_size, stat.st_mtime_ns) if read.records else None
    data = DataSet(records=read.records, path=str(path), identity=identity, note=note, source=source,
                   rollouts=read.num_rollouts)
    data.empty = read.empty  # groups without rollouts: left out of every metric, reported by the CLI
    return data, read.errors


def simulated_dataset(settings: SimulationSettings, note: str | None = None) -> DataSet:
    """A simulation as a :class:`DataSet`; its groups are simulated on first use, by workers their own shards."""
    knobs = ",".join(f"{k}={v}" for k, v in settings.model_dump().items())
    # the path names the size, the seed and only the knobs that differ from their defaults
    changed = settings.model_dump(exclude_defaults=True, exclude={"groups", "rollouts", "seed"})
    shown = ",".join([f"groups={settings.groups}", f"rollouts={settings.rollouts}", f"seed={settings.seed}",
                      *(f"{k}={v}" for k, v in changed.items())])
    return DataSet(path=f"simulation:{shown}", identity=f"simulation:{knobs}", note=note,
                   source=SimulationSource(settings), rollouts=settings.groups * settings.rollouts)


def builtin_dataset(path: Path = BUILTIN_ROLLOUTS):
    """The shipped real rollouts when present, otherwise the seeded simulation set (with a note saying so)."""
    if path.exists() and path.stat().st_size:
        try:
            return file_dataset(path, note=f"built-in rollout set ({path.name}, shipped with ttrl)")
        except DataFileError:
            pass  # no usable group: the simulation below, said plainly
    s = FALLBACK_SIMULATION
    why = ("is empty" if not path.stat().st_size else "has no usable group") if path.exists() else "is absent"
    note = (
        f"No real rollouts ship with this ttrl build ({path.name} {why}): running on the built-in "
        f"SIMULATION set ({s.groups} groups x {s.rollouts} rollouts, seed {s.seed}). Its numbers describe "
        "synthetic data, not a model; pass --data FILE for real rollouts."
    )
    return simulated_dataset(s, note=note), []

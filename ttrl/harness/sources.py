"""The groups a bench runs on: a rollout file read once, or a simulation that workers produce themselves.

A file is read and parsed once, by the main process (malformed lines and duplicate ids can only be
found by reading all of it, and are reported before the run); shard jobs receive its parsed groups.
A simulation is not produced by the main process when workers run the shards: a shard job receives
a :class:`SimulationSlice` (a few bytes) and simulates its own groups.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ttrl.core.data import GroupRecord
from ttrl.core.rollout_files import LineError, read_rollout_file

from .simulate import SimulationSettings, simulate


class GroupSlice(Protocol):
    """Groups ``start:stop`` of a data set, described so that a worker on any machine can produce them.

    Picklable and small: sending one costs bytes, not the groups. ``load()`` must return exactly the
    records the main process would have sliced from the whole set.
    """

    def load(self) -> list[GroupRecord]: ...


class GroupSource(Protocol):
    """A data set that can describe its shards: ``groups`` in all, ``slice(start, stop)`` of them."""

    @property
    def groups(self) -> int: ...

    def slice(self, start: int, stop: int) -> GroupSlice: ...


@dataclass(frozen=True)
class SimulationSlice:
    """Groups ``start:stop`` of a simulation: each group has its own random stream, so a worker
    simulates exactly the groups the whole set has there."""

    settings: SimulationSettings
    start: int
    stop: int

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


class DataSet:
    """The groups to bench and how to name them in the results.

    Either ``records`` (already in memory) or a ``source`` that describes its shards. With a source,
    ``records`` produces the whole set on first use; worker executors never ask for it: each shard
    job loads its own slice, so the main process neither builds nor pickles the groups.
    """

    def __init__(self, records: list[GroupRecord] | None = None, *, path: str = "", identity: str = "",
                 note: str | None = None, source: GroupSource | None = None, rollouts: int | None = None):
        if records is None and source is None:
            raise ValueError("a DataSet needs records or a source")
        self._records = records
        self._rollouts = rollouts  # known to whoever read or simulated the groups; else counted when needed
        self.path = path
        self.identity = identity  # what the resume fingerprint uses: file size and mtime, or simulation settings
        self.note = note  # said plainly in the output (e.g. "built-in simulation set")
        self.source = source

    @property
    def loaded(self) -> bool:
        return self._records is not None

    @property
    def records(self) -> list[GroupRecord]:
        if self._records is None:
            self._records = self.source.slice(0, self.source.groups).load()
        return self._records

    def __len__(self) -> int:
        return len(self._records) if self._records is not None else self.source.groups

    @property
    def rollouts(self) -> int:
        if self._rollouts is None:
            self._rollouts = sum(len(r.group.rollouts) for r in self.records)
        return self._rollouts

    def shard(self, start: int, stop: int, *, in_process: bool) -> list[GroupRecord] | GroupSlice:
        """What the job of groups ``start:stop`` receives: in this process, the groups; in a worker,
        the source's slice when there is a source (the worker produces the groups), else the groups."""
        if self.source is not None and not in_process:
            return self.source.slice(start, stop)
        return self.records[start:stop]


def file_dataset(path: Path, *, strict: bool = False, note: str | None = None) -> tuple[DataSet, list[LineError]]:
    """A rollout file as a :class:`DataSet`, plus its malformed-line errors (reported, not fatal)."""
    stat = path.stat() if path.exists() else None
    read = read_rollout_file(path, strict=strict)
    stat = stat or path.stat()
    identity = f"file:{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    data = DataSet(read.records, path=str(path), identity=identity, note=note, rollouts=read.num_rollouts)
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

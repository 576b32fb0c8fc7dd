"""The rollout set ``ttrl bench`` uses without ``--data``.

Real rollouts ship as ``ttrl/data/builtin_rollouts.jsonl`` (package data). A build without that file
falls back to a seeded simulation set and says so in the output, so nobody mistakes simulated numbers
for a model's.
"""

from __future__ import annotations

from pathlib import Path

from ttrl.core.rollout_files import read_rollout_file

from .runner import DataSet
from .simulate import SimulationSettings, simulate

BUILTIN_ROLLOUTS = Path(__file__).resolve().parents[1] / "data" / "builtin_rollouts.jsonl"
#: The fallback set: 200 groups x 16 rollouts, half the problems solved on average.
FALLBACK_SIMULATION = SimulationSettings(groups=200, rollouts=16, seed=0)


def file_dataset(path: Path, *, strict: bool = False, note: str | None = None):
    """A rollout file as a :class:`DataSet`, plus its malformed-line errors (reported, not fatal)."""
    read = read_rollout_file(path, strict=strict)
    stat = path.stat()
    identity = f"file:{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    return DataSet(records=read.records, path=str(path), identity=identity, note=note), read.errors


def simulated_dataset(settings: SimulationSettings, note: str | None = None) -> DataSet:
    knobs = ",".join(f"{k}={v}" for k, v in settings.model_dump().items())
    # the path names the size, the seed and only the knobs that differ from their defaults
    changed = settings.model_dump(exclude_defaults=True, exclude={"groups", "rollouts", "seed"})
    shown = ",".join([f"groups={settings.groups}", f"rollouts={settings.rollouts}", f"seed={settings.seed}",
                      *(f"{k}={v}" for k, v in changed.items())])
    return DataSet(records=simulate(settings), path=f"simulation:{shown}", identity=f"simulation:{knobs}", note=note)


def builtin_dataset(path: Path = BUILTIN_ROLLOUTS):
    """The shipped real rollouts when present, otherwise the seeded simulation set (with a note saying so)."""
    if path.exists():
        data, errors = file_dataset(path, note=f"built-in rollout set ({path.name}, shipped with ttrl)")
        if data.records:
            return data, errors
    s = FALLBACK_SIMULATION
    why = "is empty" if path.exists() else "is absent"
    note = (
        f"No real rollouts ship with this ttrl build ({path.name} {why}): running on the built-in "
        f"SIMULATION set ({s.groups} groups x {s.rollouts} rollouts, seed {s.seed}). Its numbers describe "
        "synthetic data, not a model; pass --data FILE for real rollouts."
    )
    return simulated_dataset(s, note=note), []

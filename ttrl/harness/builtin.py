"""The rollout set ``ttrl bench`` uses without ``--data``.

Real rollouts ship as ``ttrl/data/builtin_rollouts.jsonl`` (package data). A build without that file
falls back to a seeded simulation set and says so in the output, so nobody mistakes simulated numbers
for a model's.
"""

from __future__ import annotations

from pathlib import Path

from .simulate import SimulationSettings
from .sources import file_dataset, simulated_dataset

BUILTIN_ROLLOUTS = Path(__file__).resolve().parents[1] / "data" / "builtin_rollouts.jsonl"
#: The fallback set: 200 groups x 16 rollouts, half the problems solved on average.
FALLBACK_SIMULATION = SimulationSettings(groups=200, rollouts=16, seed=0)


def builtin_dataset(path: Path = BUILTIN_ROLLOUTS):
    """The shipped real rollouts when present, otherwise the seeded simulation set (with a note saying so)."""
    if path.exists():
        data, errors = file_dataset(path, note=f"built-in rollout set ({path.name}, shipped with ttrl)")
        if len(data):
            return data, errors
    s = FALLBACK_SIMULATION
    why = "is empty" if path.exists() else "is absent"
    note = (
        f"No real rollouts ship with this ttrl build ({path.name} {why}): running on the built-in "
        f"SIMULATION set ({s.groups} groups x {s.rollouts} rollouts, seed {s.seed}). Its numbers describe "
        "synthetic data, not a model; pass --data FILE for real rollouts."
    )
    return simulated_dataset(s, note=note), []

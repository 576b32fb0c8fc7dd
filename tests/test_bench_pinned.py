"""The bench's results, pinned to the last digit: on the built-in set and on a fixed simulation.

``tests/data/bench_pinned.json`` holds what the harness computed (every metric, plus a digest of the
per-group scores and rewards the report plots use) for four built-in estimators. A refactoring of the
harness must leave every value identical, whatever the shard size, with or without a journal, and
after ``--resume``.

The values depend on the answer engine (extraction, clustering, equivalence) as well as on the
harness. When the engine changes on purpose, regenerate the file from the new engine and say so:

    TTRL_REPIN_BENCH=1 .venv/bin/python -m pytest tests/test_bench_pinned.py -q
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from ttrl.core.config import ComponentSpec, RunConfig
from ttrl.core.plugins import load_plugins
from ttrl.harness.builtin import builtin_dataset
from ttrl.harness.plan import BenchPlan, PluginRecipe
from ttrl.harness.runner import run_bench, without_run_facts
from ttrl.harness.sources import simulated_dataset
from ttrl.harness.simulate import SimulationSettings

PINNED = Path(__file__).parent / "data" / "bench_pinned.json"
ESTIMATORS = ("majority_vote", "dare", "entropy", "self_certainty")
#: A fixed simulation that exercises every metric: disagreement, shared wrong modes, no-answer rollouts.
SIMULATION = SimulationSettings(groups=300, rollouts=12, seed=7, correlation=0.3, no_answer=0.1, confident_wrong=0.2)


def _plan() -> BenchPlan:
    return BenchPlan(specs=tuple(ComponentSpec(name=n, label=n) for n in ESTIMATORS),
                     config=RunConfig().model_dump(mode="json"), recipe=PluginRecipe(entry_points=False),
                     keep_details=True)


def _datasets():
    builtin, _ = builtin_dataset()
    return {"builtin": builtin, "simulation": simulated_dataset(SIMULATION)}


def _as_floats(value):
    """Numbers as floats: the digest pins values, not whether a count travelled as 12 or 12.0."""
    if isinstance(value, dict):
        return {k: _as_floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_floats(v) for v in value]
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value


def _digest(details) -> str:
    text = json.dumps(_as_floats(details), sort_keys=True, allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _pinned_view(outcome) -> dict:
    """What is pinned: the results without timings (and the data file's folder), and a digest of the
    per-group details."""
    results = without_run_facts(outcome.results)
    results["data"]["path"] = Path(results["data"]["path"]).name
    return {"results": results, "details_sha256": _digest(outcome.details)}


def _current(name: str, **kwargs) -> dict:
    registry = load_plugins(entry_points=False, warn=False).registry
    return _pinned_view(run_bench(_plan(), _datasets()[name], registry=registry, **kwargs))


@pytest.fixture(scope="module")
def pinned() -> dict:
    if os.environ.get("TTRL_REPIN_BENCH") == "1":
        PINNED.parent.mkdir(exist_ok=True)
        fresh = {name: _current(name) for name in ("builtin", "simulation")}
        PINNED.write_text(json.dumps(fresh, indent=1, sort_keys=True) + "\n")
    return json.loads(PINNED.read_text())


@pytest.mark.parametrize("name", ["builtin", "simulation"])
@pytest.mark.parametrize("shard_size", [1024, 37])
def test_results_equal_the_pinned_values(pinned, name, shard_size):
    assert _current(name, shard_size=shard_size) == pinned[name]


@pytest.mark.parametrize("name", ["builtin", "simulation"])
def test_a_journalled_and_a_resumed_run_equal_the_pinned_values(pinned, name, tmp_path):
    out = tmp_path / "results.json"
    assert _current(name, shard_size=64, output=out) == pinned[name]
    journal = tmp_path / "results.json.partial.jsonl"
    lines = journal.read_text().splitlines(keepends=True)
    journal.write_text("".join(lines[:2]))  # the header and the first shard survive
    assert _current(name, shard_size=64, output=out, resume=True) == pinned[name]


def test_the_pinned_file_covers_every_metric(pinned):
    for name in ("builtin", "simulation"):
        entries = pinned[name]["results"]["estimators"]
        assert [e["label"] for e in entries] == list(ESTIMATORS)
        assert all(e["skipped"] is None for e in entries), name
        # majority vote gives labels and binary rewards: every metric has a value
        assert all(v is not None for v in entries[0]["metrics"].values()), name

"""`ttrl bench` runs: isolation of estimators, resume after a killed run, and process/Ray scale-out.

The third-party estimators here come from a real plugin module written to a temporary directory and
loaded the two ways a user can: ``load_plugins(extra=[(name, module)])`` when embedding the harness,
and ``ttrl bench --plugin MODULE`` (rebuilt by name in every worker process and Ray task).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ttrl.core.config import ComponentSpec, RunConfig
from ttrl.core.data import RolloutGroup
from ttrl.core.errors import UserError
from ttrl.core.plugins import load_plugins
from ttrl.harness.plan import BenchPlan, PluginRecipe
from ttrl.harness.runner import run_bench, without_run_facts
from ttrl.harness.sources import simulated_dataset
from ttrl.harness.simulate import SimulationSettings

PLUGIN_MODULE = "ttrl_bench_test_plugin"
PLUGIN_SOURCE = '''
"""Test estimators: `failing` raises on every group whose id ends in 3; `spy` records what it is given;
`slow` sleeps BENCH_TEST_SLEEP seconds per group and logs each group id to BENCH_TEST_LOG."""
import os
import time

from ttrl.core.data import Estimate
from ttrl.core.hookspecs import hookimpl

SEEN = []


def estimate_failing(group, options):
    if group.id.endswith("3"):
        raise ValueError("cannot handle this group")
    return Estimate([1.0] * len(group.rollouts), None)


def estimate_spy(group, options):
    SEEN.append(group)
    return Estimate([0.5] * len(group.rollouts), None)


def estimate_slow(group, options):
    log = os.environ.get("BENCH_TEST_LOG")
    if log:
        with open(log, "a") as handle:
            handle.write(group.id + "\\n")
    time.sleep(float(os.environ.get("BENCH_TEST_SLEEP", "0")))
    return Estimate([r.stats["mean_self_certainty"] for r in group.rollouts], None)


@hookimpl
def register_estimators(register):
    register("failing", estimate_failing)
    register("spy", estimate_spy, requires=("answers",))
    register("slow", estimate_slow, requires=("mean_self_certainty",))
'''


@pytest.fixture(scope="module")
def plugin_dir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("plugin")
    (directory / f"{PLUGIN_MODULE}.py").write_text(PLUGIN_SOURCE)
    return directory


@pytest.fixture
def plugin_module(plugin_dir, monkeypatch):
    monkeypatch.syspath_prepend(str(plugin_dir))
    import importlib

    return importlib.import_module(PLUGIN_MODULE)


def plan_of(*names: str, modules: tuple[str, ...] = ()) -> BenchPlan:
    return BenchPlan(
        specs=tuple(ComponentSpec(name=n, label=n) for n in names),
        config=RunConfig().model_dump(),
        recipe=PluginRecipe(entry_points=False, modules=modules),
    )


def test_failing_third_party_estimator_keeps_the_others_results(plugin_module):
    plugins = load_plugins(entry_points=False, extra=[("failing", plugin_module)], warn=False)
    data = simulated_dataset(SimulationSettings(groups=40, rollouts=8))
    alone = run_bench(plan_of("majority_vote"), data, registry=plugins.registry, shard_size=16).results
    mixed = run_bench(plan_of("majority_vote", "failing"), data, registry=plugins.registry, shard_size=16).results
    mv, failing = mixed["estimators"]
    assert without_run_facts(mv) == without_run_facts(alone["estimators"][0])
    # groups sim/00003, sim/00013, sim/00023, sim/00033 fail; each is reported with estimator and group id
    assert failing["failed_groups"] == 4
    assert [e["group"] for e in failing["errors"]] == ["sim/00003", "sim/00013", "sim/00023", "sim/00033"]
    assert failing["errors"][0]["error"] == "ValueError: cannot handle this group"
    assert failing["metrics"]["pairwise_accuracy"] is not None  # scored: failed groups count as all-0 rewards


def test_estimators_never_see_the_reference(plugin_module, tmp_path):
    plugins = load_plugins(entry_points=False, extra=[("spy", plugin_module)], warn=False)
    path = tmp_path / "secret.jsonl"
    line = {"id": "g", "prompt": "p", "reference": "REFERENCE-31337", "meta": {"source": "x"},
            "rollouts": [{"text": "\\boxed{1}"}, {"text": "\\boxed{2}"}]}
    path.write_text(json.dumps(line) + "\n")
    from ttrl.harness.sources import file_dataset

    data, _ = file_dataset(path)
    plugin_module.SEEN.clear()
    results = run_bench(plan_of("spy"), data, registry=plugins.registry).results
    assert results["estimators"][0]["metrics"]["ground_truth_ratio"] == 0.0  # graded against the reference
    (seen,) = plugin_module.SEEN
    assert type(seen) is RolloutGroup and not hasattr(seen, "reference")
    assert "31337" not in repr(seen)
    assert seen.classes is not None and seen.classes.representatives == ["1", "2"]


def test_process_workers_give_the_single_process_results(plugin_dir, plugin_module, tmp_path):
    from ttrl.harness.scaleout import ProcessExecutor

    plan = plan_of("majority_vote", "dare", "entropy", "failing", modules=(PLUGIN_MODULE,))
    data = simulated_dataset(SimulationSettings(groups=90, rollouts=8, correlation=0.3))
    single = run_bench(plan, data, shard_size=20).results
    pooled = run_bench(plan, data, shard_size=20, executor=ProcessExecutor(2), output=tmp_path / "r.json").results
    assert pooled["harness"]["executor"] == "2 local processes"
    assert without_run_facts(pooled) == without_run_facts(single)
    assert pooled["estimators"][3]["failed_groups"] == 9  # the workers rebuilt the --plugin module


@pytest.fixture(scope="module")
def local_ray(plugin_dir):
    ray = pytest.importorskip("ray")
    # Ray workers inherit the environment of the raylet this process starts: that is how they find --plugin modules
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(plugin_dir), old) if p)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()
    if old is None:
        os.environ.pop("PYTHONPATH", None)
    else:
        os.environ["PYTHONPATH"] = old


def test_ray_gives_the_single_process_results(local_ray, plugin_module):
    from ttrl.harness.scaleout import RayExecutor

    plan = plan_of("majority_vote", "dare", "self_certainty", "failing", modules=(PLUGIN_MODULE,))
    data = simulated_dataset(SimulationSettings(groups=90, rollouts=8, correlation=0.3))
    single = run_bench(plan, data, shard_size=20).results
    distributed = run_bench(plan, data, shard_size=20, executor=RayExecutor()).results
    assert distributed["harness"]["executor"] == "Ray (local)"
    assert without_run_facts(distributed) == without_run_facts(single)
    assert local_ray.is_initialized()  # an instance the caller started is left running


def _bench_cmd(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "ttrl", "bench", "--simulate", "--sim", "groups=200", "--sim", "rollouts=8",
            "--shard-size", "20", "--estimators", "majority_vote,slow", "--plugin", PLUGIN_MODULE,
            "--output", str(out), *extra]


def _result_lines(journal: Path) -> list[dict]:
    if not journal.exists():
        return []
    items = []
    for line in journal.read_text().splitlines()[1:]:
        try:
            items.append(json.loads(line))
        except json.JSONDecodeError:
            pass
    return items


def _pairs(journal: Path) -> set[tuple[str, int]]:
    """The finished (estimator, shard) pairs recorded in a journal."""
    return {(label, item["shard"]) for item in _result_lines(journal) for label in item["estimators"]}


def _run_until(cmd, env, journal: Path, shards: int, sig: int) -> subprocess.Popen:
    proc = subprocess.Popen(cmd, env=env, cwd=journal.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while len({i["shard"] for i in _result_lines(journal)}) < shards:
        assert proc.poll() is None, f"bench finished before it could be interrupted: {proc.communicate()}"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    proc.send_signal(sig)
    proc.wait(timeout=30)
    return proc


def test_resume_after_kill_and_ctrl_c_equals_an_uninterrupted_run(plugin_dir, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTRL_")}
    env.update(PYTHONPATH=str(plugin_dir), BENCH_TEST_SLEEP="0.01")
    out = tmp_path / "results.json"
    journal = tmp_path / "results.json.partial.jsonl"

    env["BENCH_TEST_LOG"] = str(tmp_path / "run1.log")
    killed = _run_until(_bench_cmd(out), env, journal, shards=1, sig=signal.SIGKILL)
    assert killed.returncode == -signal.SIGKILL and not out.exists()
    done_after_kill = _pairs(journal)

    env["BENCH_TEST_LOG"] = str(tmp_path / "run2.log")
    interrupted = _run_until(_bench_cmd(out, "--resume"), env, journal, shards=len(done_after_kill) // 2 + 2, sig=signal.SIGINT)
    stderr = interrupted.stderr.read()
    assert interrupted.returncode == 130, stderr
    assert "--resume" in stderr and str(journal.name) in stderr and "Traceback" not in stderr
    done_after_interrupt = _pairs(journal)

    env["BENCH_TEST_LOG"] = str(tmp_path / "run3.log")
    finished = subprocess.run(_bench_cmd(out, "--resume"), env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stderr
    assert not journal.exists()

    # no finished (estimator, shard) pair was computed again: shard k holds groups sim/{20k..20k+19}
    def shards_run(log: str) -> set[int]:
        path = tmp_path / log
        return {int(g.split("/")[1]) // 20 for g in path.read_text().split()} if path.exists() else set()

    assert not shards_run("run2.log") & {s for label, s in done_after_kill if label == "slow"}
    assert not shards_run("run3.log") & {s for label, s in done_after_interrupt if label == "slow"}
    assert shards_run("run1.log") | shards_run("run2.log") | shards_run("run3.log") == set(range(10))

    env.pop("BENCH_TEST_LOG")
    env["BENCH_TEST_SLEEP"] = "0"
    reference_out = tmp_path / "uninterrupted.json"
    clean = subprocess.run(_bench_cmd(reference_out), env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert clean.returncode == 0, clean.stderr
    resumed, uninterrupted = json.loads(out.read_text()), json.loads(reference_out.read_text())
    assert without_run_facts(resumed) == without_run_facts(uninterrupted)
    assert resumed["harness"]["shards_reused"] > 0


def test_resume_refuses_a_journal_of_another_run(plugin_dir, tmp_path, run_ttrl):
    out = tmp_path / "results.json"
    (tmp_path / "results.json.partial.jsonl").write_text(json.dumps({"ttrl_bench_journal": 1, "fingerprint": "0"}) + "\n")
    result = run_ttrl("bench", "--simulate", "--sim", "groups=10", "--estimators", "majority_vote",
                      "--output", str(out), "--resume")
    assert result.returncode == 2 and "belongs to a different run" in result.stderr


def test_resume_drops_a_line_cut_short(tmp_path):
    data = simulated_dataset(SimulationSettings(groups=30, rollouts=4))
    plan = plan_of("majority_vote")
    out = tmp_path / "results.json"
    full = run_bench(plan, data, shard_size=10, output=out).results
    journal = tmp_path / "results.json.partial.jsonl"
    lines = journal.read_text().splitlines(keepends=True)
    assert len(lines) == 4  # header + 3 shards
    journal.write_text("".join(lines[:2]) + lines[2][:50])  # killed while writing shard 1's line
    resumed = run_bench(plan, data, shard_size=10, output=out, resume=True).results
    assert resumed["harness"]["shards_reused"] == 1
    assert without_run_facts(resumed) == without_run_facts(full)
    assert all(json.loads(line) for line in journal.read_text().splitlines())  # no merged lines


def _messy_copy(data, path: Path) -> None:
    """The groups as a rollout file with a blank line, a malformed line and a repeated id among them."""
    from ttrl.core.rollout_files import record_to_json

    lines = [json.dumps(record_to_json(r)) for r in data.records]
    lines.insert(7, "")
    lines.insert(20, '{"id": "broken", "rollouts": [')
    lines.insert(33, lines[3])  # a later duplicate of group 3 is dropped by the reader
    path.write_text("\n".join(lines) + "\n")


def test_simulated_shards_equal_slices_of_the_whole_simulation():
    from ttrl.core.rollout_files import record_to_json
    from ttrl.harness.simulate import simulate

    settings = SimulationSettings(groups=12, rollouts=5, correlation=0.4)
    whole = [record_to_json(r) for r in simulate(settings)]
    assert [record_to_json(r) for r in simulate(settings, 4, 9)] == whole[4:9]
    assert [record_to_json(r) for r in simulated_dataset(settings).source.slice(9, 12).load()] == whole[9:]


def test_workers_given_a_files_groups_give_the_single_process_results(plugin_dir, plugin_module, tmp_path):
    from ttrl.harness.sources import file_dataset
    from ttrl.harness.scaleout import ProcessExecutor

    path = tmp_path / "messy.jsonl"
    _messy_copy(simulated_dataset(SimulationSettings(groups=60, rollouts=6, correlation=0.3)), path)
    data, _ = file_dataset(path)
    plan = plan_of("majority_vote", "entropy", "failing", modules=(PLUGIN_MODULE,))
    single = run_bench(plan, data, shard_size=16).results
    pooled = run_bench(plan, data, shard_size=16, executor=ProcessExecutor(2)).results
    assert without_run_facts(pooled) == without_run_facts(single)
    assert single["data"] == {"path": str(path), "groups": 60, "rollouts": 360}


def test_the_partial_line_repair_that_journal_and_generation_share(tmp_path):
    from ttrl.core.rollout_files import drop_partial_last_line

    path = tmp_path / "lines.jsonl"
    for before, after in [("", ""), ('{"a": 1}\n', '{"a": 1}\n'), ('{"a": 1}\n{"b": 2', '{"a": 1}\n'),
                          ('{"b": 2', ""), ('{"a": 1}\n{"b": 2}\n{"c"', '{"a": 1}\n{"b": 2}\n')]:
        path.write_text(before)
        drop_partial_last_line(path)
        assert path.read_text() == after, before

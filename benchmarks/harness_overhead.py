"""The bench harness's own overhead, and its scaling from 1 to 2 local worker processes.

    .venv/bin/python benchmarks/harness_overhead.py [--groups 10000] [--rollouts 16] [--repeats 3]

Runs ``majority_vote`` on seeded simulated groups (default 10,000 x 16) and splits a single-process
``run_bench`` (journal and output file included) into:

- estimator: ``EstimationPipeline.run`` calls, what the results' ``seconds`` reports;
- answer classes: extraction, clustering and grading against the reference, once per group;
- metrics: per-group scoring and the dataset aggregation;
- harness overhead: everything else (dispatch, validation, journal and output I/O).

The target is overhead < 5% of estimator time. For reference it also times the same estimator in a
bare loop over pre-classified groups, and reading the data from a JSONL file (the same for any tool).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from ttrl.core.config import ComponentSpec, RunConfig
from ttrl.core.rollout_files import read_rollout_file, write_rollout_file
from ttrl.harness.builtin import simulated_dataset
from ttrl.harness.runner import BenchPlan, PluginRecipe, _context_for, run_bench
from ttrl.harness.scaleout import ProcessExecutor
from ttrl.harness.simulate import SimulationSettings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=10_000)
    parser.add_argument("--rollouts", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--shard-size", type=int, default=256)
    args = parser.parse_args()

    t = time.perf_counter()
    data = simulated_dataset(SimulationSettings(groups=args.groups, rollouts=args.rollouts, seed=0))
    print(f"simulated {args.groups} groups x {args.rollouts} rollouts in {time.perf_counter() - t:.1f}s", flush=True)
    plan = BenchPlan(
        specs=(ComponentSpec(name="majority_vote", label="majority_vote"),),
        config=RunConfig().model_dump(mode="json"),
        recipe=PluginRecipe(entry_points=False),
    )
    work = Path(tempfile.mkdtemp(prefix="ttrl-bench-overhead-"))

    # reference: the estimator in a bare loop over groups whose answer classes are already computed
    pipeline = _context_for(plan).pipelines["majority_vote"]
    classes = [pipeline.classify(r.group) for r in data.records]
    bare = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        for record, c in zip(data.records, classes):
            pipeline.run(record.group, classes=c)
        bare.append(time.perf_counter() - start)

    rows = []
    for i in range(args.repeats):
        out = work / f"results-{i}.json"
        start = time.perf_counter()
        outcome = run_bench(plan, data, shard_size=args.shard_size, output=out)
        written = time.perf_counter()
        out.write_text(json.dumps(outcome.results))
        elapsed = time.perf_counter() - start
        h = outcome.results["harness"]
        estimator = outcome.results["estimators"][0]["metrics"]["seconds"]
        output_io = time.perf_counter() - written
        overhead = h["overhead_seconds"] + output_io
        direct = h["validation_seconds"] + h["journal_seconds"] + output_io
        rows.append((elapsed, estimator, h["answer_classes_seconds"], h["metrics_seconds"], overhead, direct))
        print(f"  run {i + 1}: {elapsed:.3f}s", flush=True)
    elapsed, estimator, shared, metrics, overhead, direct = (statistics.median(col) for col in zip(*rows))
    ratios = [r[4] / r[1] for r in rows]
    direct_ratios = [r[5] / r[1] for r in rows]

    print(f"\nmajority_vote on {args.groups} groups x {args.rollouts} rollouts, 1 process, median of {args.repeats}:")
    print(f"  {'estimator (results seconds)':32s} {estimator:8.3f}s")
    print(f"  {'estimator, bare loop':32s} {statistics.median(bare):8.3f}s")
    print(f"  {'answer classes + grading':32s} {shared:8.3f}s  (shared by all estimators)")
    print(f"  {'metrics (scoring, aggregation)':32s} {metrics:8.3f}s")
    print(f"  {'harness overhead':32s} {overhead:8.3f}s  (total minus the above: dispatch, validation, I/O,")
    print(f"  {'':32s} {'':9s} and GC pauses and preemption not inside a timed part)")
    print(f"  {'  of which timed directly':32s} {direct:8.3f}s  (input validation + journal writes + output JSON)")
    print(f"  {'total':32s} {elapsed:8.3f}s")
    for name, values in (("overhead", ratios), ("directly timed overhead", direct_ratios)):
        median = statistics.median(values)
        print(f"  {name} / estimator time: {median:.1%} (runs: {', '.join(f'{r:.1%}' for r in values)};"
              f" target < 5%) -> {'PASS' if median < 0.05 else 'FAIL'}")
    # majority vote cannot run without the answer classes the harness computes for it
    print(f"  overhead / (estimator + answer classes): {overhead / (estimator + shared):.1%}")

    path = work / "rollouts.jsonl"
    write_rollout_file(path, data.records)
    start = time.perf_counter()
    read_rollout_file(path)
    print(f"  (reading the same data from JSONL, {path.stat().st_size / 1e6:.0f} MB: {time.perf_counter() - start:.2f}s;"
          " any tool pays it, so it is not counted above)")

    print(f"\nscaling, same data, wall time of run_bench (load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs):")
    small = simulated_dataset(SimulationSettings(groups=args.shard_size, rollouts=args.rollouts, seed=1))
    timings = {}
    for label, workers in (("1 process (in-process)", None), ("--workers 1", 1), ("--workers 2", 2)):
        start = time.perf_counter()
        run_bench(plan, data, shard_size=args.shard_size, executor=workers and ProcessExecutor(workers))
        total = time.perf_counter() - start
        # start-up of fresh worker processes (imports, plugin loading), timed on a one-shard run
        start = time.perf_counter()
        run_bench(plan, small, shard_size=args.shard_size, executor=workers and ProcessExecutor(workers))
        startup = (time.perf_counter() - start) if workers else 0.0
        timings[label] = (total, startup)
        print(f"  {label:24s} {total:7.2f}s  (of which ~{startup:.2f}s worker start-up)", flush=True)
    one, two = timings["--workers 1"], timings["--workers 2"]
    print(f"  2 workers vs 1 worker: {one[0] / two[0]:.2f}x wall, "
          f"{(one[0] - one[1]) / max(two[0] - two[1], 1e-9):.2f}x after start-up; "
          f"2 workers vs in-process: {timings['1 process (in-process)'][0] / two[0]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())

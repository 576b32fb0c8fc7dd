"""The bench harness's own overhead, and its scaling from 1 to 2 local worker processes.

    .venv/bin/python benchmarks/harness_overhead.py [--groups 10000] [--rollouts 16] [--repeats 5]

Runs ``majority_vote`` on seeded simulated groups (default 10,000 x 16) and splits a single-process
``run_bench`` (journal, output file and journal removal included, as ``ttrl bench --output`` does)
into:

- estimator: ``EstimationPipeline.run`` calls, what the results' ``seconds`` reports;
- answer classes: extraction, clustering and grading against the reference, once per group;
- metrics: per-group scoring and the dataset aggregation;
- harness overhead: everything else (dispatch, per-shard input checks, journal and output I/O, and
  whatever GC pause or preemption falls outside the timed parts), as wall time minus the above.

The target is overhead < 5% of estimator time, at the default shard size; the same split at
``--small-shards`` (256, the old default) shows what the per-shard costs are. The groups are
simulated before the timed runs: producing data is any tool's cost, reported apart.

Scaling: 1 process, ``--workers 1`` and ``--workers 2`` on a fresh simulation each, timed end to end:
every path simulates the groups exactly once (the single process before benching, each worker its
own shards), so the comparison includes producing the data. Worker start-up is measured apart.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

from ttrl.core.rollout_files import write_json_file as _write_json
from ttrl.core.config import ComponentSpec, RunConfig
from ttrl.harness.builtin import simulated_dataset
from ttrl.harness.runner import DEFAULT_SHARD_SIZE, BenchPlan, PluginRecipe, _context_for, journal_path, run_bench
from ttrl.harness.scaleout import ProcessExecutor
from ttrl.harness.simulate import SimulationSettings


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (5 min {five:.1f}) on {os.cpu_count()} CPUs"


def _cpu_seconds() -> tuple[float, float]:
    """CPU seconds (user + system) of this process and of its finished children (the workers)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime


def _spin(n: int) -> float:
    x = 0
    for i in range(n):
        x += i * i
    return float(x)


def machine_parallelism(workers: int, seconds_of_work: float = 2.0) -> float:
    """Wall time of a fixed pure-Python workload on 1 vs ``workers`` spawned processes: the speed-up
    the machine allows right now (2.0 on two idle cores, ~1.0 when other processes take one)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    chunks, n = 4 * workers, int(seconds_of_work * 2.5e6)
    walls = []
    for count in (1, workers):
        with ProcessPoolExecutor(count, mp_context=multiprocessing.get_context("spawn")) as pool:
            list(pool.map(_spin, [10] * count))  # start-up is not what this measures
            start = time.perf_counter()
            list(pool.map(_spin, [n // chunks] * chunks))
            walls.append(time.perf_counter() - start)
    return walls[0] / walls[1]


def split(plan, data, shard_size: int, repeats: int, work: Path) -> list[tuple[float, ...]]:
    rows = []
    for i in range(repeats):
        out = work / f"results-{shard_size}-{i}.json"
        start = time.perf_counter()
        outcome = run_bench(plan, data, shard_size=shard_size, output=out)
        written = time.perf_counter()
        _write_json(out, outcome.results)  # as `ttrl bench --output` writes it
        journal_path(out).unlink()
        end = time.perf_counter()
        h = outcome.results["harness"]
        estimator = outcome.results["estimators"][0]["metrics"]["seconds"]
        output_io = end - written
        overhead = h["overhead_seconds"] + output_io
        rows.append((end - start, estimator, h["answer_classes_seconds"], h["metrics_seconds"], overhead,
                     h["validation_seconds"], h["journal_seconds"] + output_io))
    return rows


def report(title: str, rows: list[tuple[float, ...]], bare: float) -> float:
    elapsed, estimator, shared, metrics, overhead, validation, io = (statistics.median(c) for c in zip(*rows))
    ratios = [r[4] / r[1] for r in rows]
    median = statistics.median(ratios)
    print(f"\n{title}, median of {len(rows)}:")
    print(f"  {'estimator (results seconds)':32s} {estimator:8.3f}s")
    print(f"  {'estimator, bare loop':32s} {bare:8.3f}s  (pre-classified groups, no harness)")
    print(f"  {'answer classes + grading':32s} {shared:8.3f}s  (shared by all estimators)")
    print(f"  {'metrics (scoring, aggregation)':32s} {metrics:8.3f}s")
    print(f"  {'harness overhead':32s} {overhead * 1e3:7.1f}ms  (total minus the above)")
    print(f"  {'  of which input checks':32s} {validation * 1e3:7.1f}ms")
    print(f"  {'  of which journal + output I/O':32s} {io * 1e3:7.1f}ms")
    print(f"  {'total':32s} {elapsed:8.3f}s")
    print(f"  overhead / estimator time: {median:.1%} (runs: {', '.join(f'{r:.1%}' for r in ratios)}; target < 5%)"
          f" -> {'PASS' if median < 0.05 else 'FAIL'}")
    return median


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=10_000)
    parser.add_argument("--rollouts", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--shard-size", type=int, default=DEFAULT_SHARD_SIZE)
    parser.add_argument("--small-shards", type=int, default=256, help="second shard size to split (0: skip)")
    parser.add_argument("--skip-scaling", action="store_true")
    parser.add_argument("--only-scaling", action="store_true")
    args = parser.parse_args()
    settings = SimulationSettings(groups=args.groups, rollouts=args.rollouts, seed=0)
    plan = BenchPlan(
        specs=(ComponentSpec(name="majority_vote", label="majority_vote"),),
        config=RunConfig().model_dump(mode="json"),
        recipe=PluginRecipe(entry_points=False),
    )
    work = Path(tempfile.mkdtemp(prefix="ttrl-bench-overhead-"))
    print(f"start: {_load()}", flush=True)

    if args.only_scaling:
        return scaling(plan, settings, args.shard_size)
    t = time.perf_counter()
    data = simulated_dataset(settings)
    data.records  # simulated here, before the timed runs
    print(f"simulated {args.groups} groups x {args.rollouts} rollouts in {time.perf_counter() - t:.1f}s", flush=True)

    # reference, and warm-up of the plugins: the estimator in a bare loop over pre-classified groups
    pipeline = _context_for(plan).pipelines["majority_vote"]
    classes = [pipeline.classify(r.group) for r in data.records]
    bare = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        for record, c in zip(data.records, classes):
            pipeline.run(record.group, classes=c)
        bare.append(time.perf_counter() - start)
    del classes

    title = f"majority_vote on {args.groups} groups x {args.rollouts} rollouts, 1 process"
    ratio = report(f"{title}, --shard-size {args.shard_size}",
                   split(plan, data, args.shard_size, args.repeats, work), statistics.median(bare))
    if args.small_shards:
        report(f"{title}, --shard-size {args.small_shards}",
               split(plan, data, args.small_shards, max(3, args.repeats // 2), work), statistics.median(bare))
    print(f"(now: {_load()})")
    del data
    if not args.skip_scaling:
        scaling(plan, settings, args.shard_size)
    return 0 if ratio < 0.05 else 1


def scaling(plan, settings, shard_size: int) -> int:
    print(f"\nscaling: run_bench wall time on a fresh simulation each, groups simulated inside ({_load()}):")
    small = SimulationSettings(groups=shard_size, rollouts=settings.rollouts, seed=1)
    timings = {}
    for label, workers in (("1 process (in-process)", None), ("--workers 1", 1), ("--workers 2", 2)):
        start, (own, kids) = time.perf_counter(), _cpu_seconds()
        outcome = run_bench(plan, simulated_dataset(settings), shard_size=shard_size,
                            executor=workers and ProcessExecutor(workers))
        total = time.perf_counter() - start
        own_after, kids_after = _cpu_seconds()
        cpu = f"CPU: main {own_after - own:.2f}s, workers {kids_after - kids:.2f}s"
        h = outcome.results["harness"]
        # start-up of fresh worker processes (imports, plugin loading), timed on a one-shard run
        start = time.perf_counter()
        run_bench(plan, simulated_dataset(small), shard_size=shard_size, executor=workers and ProcessExecutor(workers))
        startup = (time.perf_counter() - start) if workers else 0.0
        timings[label] = (total, startup)
        print(f"  {label:24s} {total:7.2f}s  ({cpu}; simulating {h['load_seconds']:.2f}s wall summed over"
              f" processes; ~{startup:.2f}s worker start-up; {_load()})", flush=True)
    one, two = timings["--workers 1"], timings["--workers 2"]
    print(f"  2 workers vs 1 worker: {one[0] / two[0]:.2f}x wall, "
          f"{(one[0] - one[1]) / max(two[0] - two[1], 1e-9):.2f}x after start-up; "
          f"2 workers vs in-process: {timings['1 process (in-process)'][0] / two[0]:.2f}x")
    print(f"  control: a pure-Python loop on 2 vs 1 spawned processes, now: {machine_parallelism(2):.2f}x"
          f" (the most any program could gain here; {_load()})")
    print("  (on a loaded machine the wall ratio tells how much CPU the other processes left; the CPU columns"
          " show the work itself: the same total with 1 or 2 workers, none of it in the main process)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The bench runner: every estimator on the same groups, scored with CONTRACT.md's metrics.

Work is cut into *shards* of consecutive groups. A shard job (:mod:`ttrl.harness.shard`) grades its
groups once (answer classes and correctness are shared by all estimators), runs each pending
estimator on them, and returns per-group scores. The main process keeps every finished job in a
journal (:mod:`ttrl.harness.journal`; with ``--output`` also on disk, so an interrupted run resumes
without recomputing finished pairs), and assembles the result in shard order, so a resumed, a
multi-process and a Ray run give the same numbers.

``seconds`` of an estimator is the wall time of its ``EstimationPipeline.run`` calls (estimator plus
reward shapers), summed over shards. It excludes the shared answer extraction/clustering and grading,
which are reported once under ``harness``; ``rollouts_per_second`` is rollouts / ``seconds``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ttrl.core.errors import UserError
from ttrl.core.metrics import ESTIMATE_FIELDS, METRIC_NAMES, TRUTH_FIELDS, GroupScore, MetricsAccumulator
from ttrl.core.registry import Registry

from .journal import Journal, MemoryJournal, fingerprint, journal_path
from .plan import BenchPlan
from .shard import ERRORS_KEPT, LocalExecutor, ShardContext, ShardJob, context_for
from .sources import DataSet

#: Groups per shard job: each shard costs a journal line, a flush and a dispatch, about 0.1-0.3 ms
#: together, which 1024 groups amortise to nothing next to their grading.
DEFAULT_SHARD_SIZE = 1024
#: An estimator's metrics in the results: CONTRACT.md's quality metrics, then its timing.
RESULT_METRICS = (*METRIC_NAMES, "seconds", "rollouts_per_second")
_SCORE_FIELDS = tuple(GroupScore.__dataclass_fields__)
#: Exceptions by which an executor says that a worker died.
_WORKER_DEATHS = frozenset({"BrokenProcessPool", "RayTaskError", "WorkerCrashedError", "RayActorError"})


class BenchInterrupted(UserError):
    """Ctrl-C or a dead worker: finished results are in the journal, ``--resume`` completes the run."""

    exit_code = 130


@dataclass
class Outcome:
    """The CONTRACT.md result object plus the per-group detail the report plots need."""

    results: dict[str, Any]
    details: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class RunTimes:
    """Where a run's wall time went, as the ``harness`` section reports it."""

    load: float = 0.0  # reading or simulating groups: any tool's cost, not the harness's
    computed: float = 0.0  # grading, estimators and scoring of the shard jobs this run computed
    validation: float = 0.0  # per-shard input checks (part of the overhead)
    journal: float = 0.0  # opening the journal and writing its lines (part of the overhead)

    def add_job(self, result: dict[str, Any]) -> None:
        estimators = result["estimators"].values()
        self.computed += result["shared_seconds"] + result["truth_seconds"] + sum(
            r["seconds"] + r["scoring_seconds"] for r in estimators)
        self.validation += result["validation_seconds"]
        self.load += result.pop("load_seconds", 0.0)  # a worker's own loading: a fact of this run only


def run_bench(
    plan: BenchPlan,
    data: DataSet,
    *,
    executor=None,
    shard_size: int = DEFAULT_SHARD_SIZE,
    output: Path | None = None,
    resume: bool = False,
    on_progress: Callable[[int], None] | None = None,
    registry: Registry | None = None,
) -> Outcome:
    """Run ``plan`` on ``data``; see the module docstring.

    ``executor``: how shard jobs run (default: one after another in this process; see
    :mod:`ttrl.harness.scaleout`). ``output``: the results file, beside which the journal is kept;
    ``resume`` continues its journal. ``on_progress(groups)`` follows finished shards. ``registry``:
    run in this process with these plugins instead of the plan's recipe.
    """
    if shard_size < 1:
        raise UserError(f"--shard-size must be at least 1, got {shard_size}.")
    wall = time.perf_counter()
    context = ShardContext(plan, registry) if registry is not None else context_for(plan)
    executor = executor or LocalExecutor(context)
    times = RunTimes()
    if executor.in_process and not data.loaded:
        start = time.perf_counter()
        data.records  # in this process every shard job needs its groups here
        times.load += time.perf_counter() - start
    count = len(data)
    bounds = [(i, min(i + shard_size, count)) for i in range(0, count, shard_size)]

    start = time.perf_counter()
    journal = _open_journal(plan, data, shard_size=shard_size, output=output, resume=resume)
    times.journal += time.perf_counter() - start
    jobs = []
    for index, (lo, hi) in enumerate(bounds):
        pending = [label for label in plan.labels if (label, index) not in journal.done]
        if pending:
            jobs.append(ShardJob(index, pending, data.shard(lo, hi, in_process=executor.in_process)))
        elif on_progress:
            on_progress(hi - lo)
    total = len(bounds) * len(plan.labels)
    try:
        for result in executor.run(plan, jobs):
            times.add_job(result)
            start = time.perf_counter()
            journal.add(result)
            times.journal += time.perf_counter() - start
            if on_progress:
                on_progress(result["groups"])
    except KeyboardInterrupt:
        raise BenchInterrupted(_interrupted_message(journal, total, "Interrupted")) from None
    except UserError:
        raise
    except Exception as exc:
        if type(exc).__name__ in _WORKER_DEATHS:
            raise BenchInterrupted(_interrupted_message(journal, total, f"A worker died ({type(exc).__name__})")) from None
        raise
    finally:
        executor.close()
        journal.close()

    assembling = time.perf_counter()
    outcome = assemble(plan, context, data, journal, num_shards=len(bounds))
    assembled = time.perf_counter()
    elapsed = assembled - wall
    scoring = (sum(r["scoring_seconds"] for r in journal.done.values())
               + sum(s["truth_seconds"] for s in journal.shards.values()) + assembled - assembling)
    outcome.results["harness"].update(
        {"metrics_seconds": scoring,
         # dispatch, validation and I/O of this run; only defined in-process, where nothing runs in parallel
         "overhead_seconds": elapsed - times.load - times.computed - (assembled - assembling) if executor.in_process else None,
         "validation_seconds": times.validation,
         "journal_seconds": times.journal,
         "load_seconds": times.load,
         "shard_size": shard_size, "shards": len(bounds), "shards_reused": len(bounds) - len(jobs),
         "executor": getattr(executor, "description", type(executor).__name__),
         "elapsed_seconds": elapsed}
    )
    return outcome


def _open_journal(plan: BenchPlan, data: DataSet, *, shard_size: int, output: Path | None, resume: bool) -> MemoryJournal:
    if output is None:
        if resume:
            raise UserError("--resume needs --output: the unfinished run's results are kept next to its output file.")
        return MemoryJournal()
    try:
        return Journal(journal_path(output), fingerprint(plan, data, shard_size), resume=resume)
    except OSError as exc:
        raise UserError(f"Cannot write next to --output {output}: {exc.strerror}. Check that its folder exists.") from None


def _interrupted_message(journal: MemoryJournal, total: int, what: str) -> str:
    where = (
        f"they are saved in {journal.path}; run the same command with --resume to finish"
        if journal.path
        else "nothing was saved because no --output was given"
    )
    return f"{what} after {len(journal.done)} of {total} estimator x shard results; {where}."


def _skip_reason(parts: list[dict[str, Any]], groups: int) -> str | None:
    """Why an estimator is skipped: some groups lack its inputs (how many, and the first problem)."""
    count = sum(p.get("missing_inputs", 0) for p in parts)
    if not count:
        return None
    first = next(p["first_missing"] for p in parts if p.get("missing_inputs"))
    return f"skipped: {count} of {groups} group(s) lack its inputs. First: {first}"


def assemble(plan: BenchPlan, context: ShardContext, data: DataSet, journal: MemoryJournal, *, num_shards: int) -> Outcome:
    """The CONTRACT.md result JSON, built in shard order so every execution path gives the same numbers."""
    shards = [journal.shards[i] for i in range(num_shards)]
    truth = {name: [v for s in shards for v in s["truth"][name]] for name in TRUTH_FIELDS}
    entries, details = [], {}
    for spec in plan.specs:
        label = spec.label or spec.name
        estimator = context.pipelines[label].estimator
        entry: dict[str, Any] = {"name": estimator.name, "options": estimator.options_dict(), "label": label}
        entries.append(entry)
        parts = [journal.done[(label, i)] for i in range(num_shards)]
        skipped = _skip_reason(parts, len(data))
        if skipped:
            entry.update(metrics=dict.fromkeys(RESULT_METRICS), skipped=skipped, errors=[], failed_groups=0)
            continue
        columns = {**truth, **{name: [v for p in parts for v in p["scores"][name]] for name in ESTIMATE_FIELDS}}
        scores = [GroupScore(**dict(zip(columns, row))) for row in zip(*columns.values())]
        accumulator = MetricsAccumulator()
        for score in scores:
            accumulator.add(score)
        seconds = sum(p["seconds"] for p in parts)
        metrics = {**accumulator.result(), "seconds": seconds,
                   "rollouts_per_second": data.rollouts / seconds if seconds > 0 else None}
        errors = [e for p in parts for e in p["errors"]][:ERRORS_KEPT]
        entry.update(metrics=metrics, skipped=None, errors=errors, failed_groups=sum(p["failed_groups"] for p in parts))
        if plan.keep_details:  # the report's plots need per-group scores and every reward
            details[label] = {
                "scores": {k: columns[k] for k in _SCORE_FIELDS},
                "rewards": {which: [r for p in parts for r in p["rewards"][which]] for which in ("correct", "incorrect")},
            }
    results = {
        "data": {"path": data.path, "groups": len(data), "rollouts": data.rollouts},
        "estimators": entries,
        "harness": {"data_note": data.note, "answer_classes_seconds": sum(s["shared_seconds"] for s in shards)},
    }
    return Outcome(results=results, details=details)


#: Fields that differ between two runs of the same bench: wall-clock times and ``harness`` (how it ran).
RUN_FACT_KEYS = frozenset({"seconds", "rollouts_per_second", "harness"})


def without_run_facts(obj: Any) -> Any:
    """A result object without timings and the ``harness`` section, to compare two runs."""
    if isinstance(obj, dict):
        return {k: without_run_facts(v) for k, v in obj.items() if k not in RUN_FACT_KEYS}
    if isinstance(obj, list):
        return [without_run_facts(v) for v in obj]
    return obj

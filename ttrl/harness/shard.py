"""One shard job: grade a shard's groups once, then run and score each pending estimator on them.

A shard job's result is a plain dict of numbers and lists: what the journal writes as one JSON line
and what the in-memory path keeps as it is. Its per-group columns hold only the groups that have a
reference (the scored ones), in group order:

- ``truth``: the :data:`~ttrl.core.metrics.TRUTH_FIELDS` (ground-truth ratio, pass@N, pairs, N),
  computed once per group from the grading and shared by every estimator;
- ``estimators[label]["scores"]``: the :data:`~ttrl.core.metrics.ESTIMATE_FIELDS` of that estimator.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ttrl.core.answers import AnswerEngine
from ttrl.core.config import RunConfig
from ttrl.core.data import Estimate, GroupRecord
from ttrl.core.errors import EstimatorFailure, EstimatorInputError, OptionError, UnknownNameError
from ttrl.core.estimation import EstimationPipeline, resolve
from ttrl.core.metrics import ESTIMATE_FIELDS, TRUTH_FIELDS, estimate_facts, grade_group, label_facts, truth_facts
from ttrl.core.registry import ANSWERS, Registry

from .plan import BenchPlan
from .sources import GroupSlice

#: Errors kept per estimator and shard (the count is always complete).
ERRORS_KEPT = 20


@dataclass
class ShardJob:
    """One shard's pending estimators and what the job runs on: its groups, or a slice to load."""

    index: int
    labels: list[str]
    groups: list[GroupRecord] | GroupSlice


class ShardContext:
    """Resolved pipelines and the shared answer engine of a plan, built once per process."""

    def __init__(self, plan: BenchPlan, registry: Registry):
        config = RunConfig.model_validate(plan.config)
        self.engine = AnswerEngine.from_settings(registry, config.answers)
        shapers = [resolve(registry.shapers, s, path=("reward_shaping", i)) for i, s in enumerate(config.reward_shaping)]
        self.pipelines: dict[str, EstimationPipeline] = {}
        for i, spec in enumerate(plan.specs):
            resolved = resolve(registry.estimators, spec, path=("estimators", i))
            self.pipelines[spec.label or spec.name] = EstimationPipeline(resolved, self.engine, shapers)
        self.keep_details = plan.keep_details

    def run_shard(self, index: int, records: Sequence[GroupRecord], labels: Sequence[str]) -> dict[str, Any]:
        """Grade the shard's groups once, then run and score each estimator in ``labels``.

        An estimator whose required inputs some of the shard's groups lack does not run on the shard;
        its result says how many groups lack them and the first problem, and the run skips it.
        Checking here, not over the whole data set first, keeps the check on the worker that already
        holds the groups.
        """
        start = time.perf_counter()
        missing = {label: problem for label in labels
                   if (problem := _input_problem(self.pipelines[label], records)) is not None}
        validation = time.perf_counter() - start

        start = time.perf_counter()
        classes, truths = self._grade(records)
        shared = time.perf_counter() - start

        start = time.perf_counter()
        truth_columns: dict[str, list] = {name: [] for name in TRUTH_FIELDS}
        for truth in truths:
            if truth is not None:
                for name, value in truth_facts(truth.correct).items():
                    truth_columns[name].append(value)
        truth_seconds = time.perf_counter() - start

        results = {}
        for label in labels:
            if label in missing:
                count, first = missing[label]
                results[label] = {"seconds": 0.0, "scoring_seconds": 0.0, "scores": {}, "failed_groups": 0,
                                  "errors": [], "missing_inputs": count, "first_missing": first}
            else:
                results[label] = self._run_estimator(self.pipelines[label], records, classes, truths)
        start = time.perf_counter()
        del classes, truths  # freeing the shard's answer classes is part of their cost, not the harness's
        shared += time.perf_counter() - start
        return {"shard": index, "groups": len(records), "shared_seconds": shared, "validation_seconds": validation,
                "truth_seconds": truth_seconds, "truth": truth_columns, "estimators": results}

    def _grade(self, records: Sequence[GroupRecord]):
        engine = self.engine
        classes, truths = [], []
        for record in records:
            group = record.group
            try:
                c = engine.classify(group)
            except UnknownNameError as exc:
                # the engine looks up each group's extractor anyway: that lookup is the task check
                raise UnknownNameError(f"{record.source or group.id} (group {group.id!r}, task {group.task!r}): {exc}") from None
            classes.append(c)
            truths.append(None if record.reference is None else grade_group(engine, c, record.reference, engine.task_of(group)))
        return classes, truths

    def _run_estimator(self, pipeline: EstimationPipeline, records, classes, truths) -> dict[str, Any]:
        estimates: list[Estimate | Exception] = []
        start = time.perf_counter()
        for record, c in zip(records, classes):
            try:
                estimates.append(pipeline.run(record.group, classes=c))
            except (EstimatorFailure, EstimatorInputError, OptionError) as exc:
                estimates.append(exc)
        seconds = time.perf_counter() - start

        scoring_start = time.perf_counter()
        columns: dict[str, list] = {name: [] for name in ESTIMATE_FIELDS}
        errors, failed = [], 0
        rewards = {"correct": [], "incorrect": []}
        for record, c, truth, est in zip(records, classes, truths, estimates):
            if isinstance(est, Exception):
                failed += 1
                reason = est.reason if isinstance(est, EstimatorFailure) else str(est)
                if len(errors) < ERRORS_KEPT:
                    errors.append({"group": record.group.id, "error": reason})
                est = Estimate.failure(len(record.group.rollouts), reason)  # scored as `ttrl estimate` writes it
            if truth is None:
                continue
            label_correct, label_size = label_facts(self.engine, c, truth, est.label)
            facts = estimate_facts(est.rewards, truth.correct, label=est.label, label_correct=label_correct,
                                   label_size=label_size)
            for name in ESTIMATE_FIELDS:
                columns[name].append(facts[name])
            if self.keep_details:
                for r, ok in zip(est.rewards, truth.correct):
                    rewards["correct" if ok else "incorrect"].append(r)
        out = {"seconds": seconds, "scores": columns, "failed_groups": failed, "errors": errors}
        if self.keep_details:
            out["rewards"] = rewards
        del estimates  # freed inside the timed part: deallocation is scoring's cost too
        out["scoring_seconds"] = time.perf_counter() - scoring_start
        return out


def _input_problem(pipeline: EstimationPipeline, records: Sequence[GroupRecord]) -> tuple[int, str] | None:
    """How many of ``records`` lack the pipeline's required inputs, and the first problem; None if none do."""
    if pipeline.requires <= {ANSWERS}:
        return None  # answers need only an extractor for each task, which grading looks up
    first, count = None, 0
    for record in records:
        try:
            pipeline.check_inputs(record.group)
        except EstimatorInputError as exc:
            count += 1
            first = first or str(exc)
    return (count, first) if count else None


_CONTEXTS: dict[str, ShardContext] = {}


def context_for(plan: BenchPlan) -> ShardContext:
    """The plan's context in this process, from the plugins its recipe rebuilds (cached per plan)."""
    key = plan.key()
    if key not in _CONTEXTS:
        if len(_CONTEXTS) > 8:  # a sweep or a test session builds a few plans; don't keep them all
            _CONTEXTS.clear()
        _CONTEXTS[key] = ShardContext(plan, plan.recipe.load().registry)
    return _CONTEXTS[key]


def run_shard_job(plan: BenchPlan, index: int, groups: list[GroupRecord] | GroupSlice, labels: Sequence[str]) -> dict[str, Any]:
    """Entry point of a worker (process or Ray task): rebuild the plugins once, load and run one shard."""
    start = time.perf_counter()
    records = groups if isinstance(groups, list) else groups.load()
    loaded = time.perf_counter() - start
    result = context_for(plan).run_shard(index, records, labels)
    result["load_seconds"] = loaded
    return result


class LocalExecutor:
    """Runs shard jobs one after another in this process, on the groups the jobs carry."""

    description = "1 process"
    in_process = True

    def __init__(self, context: ShardContext):
        self.context = context

    def run(self, plan: BenchPlan, jobs: Iterable[ShardJob]) -> Iterator[dict[str, Any]]:
        for job in jobs:
            yield self.context.run_shard(job.index, job.groups, job.labels)

    def close(self) -> None:
        pass

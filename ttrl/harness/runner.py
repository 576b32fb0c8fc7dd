"""The bench runner: every estimator on the same groups, scored with CONTRACT.md's metrics.

Work is cut into *shards* of consecutive groups. A shard job grades its groups once (answer classes
and correctness are shared by all estimators), runs each pending estimator on them, and returns
per-group scores. The main process appends every finished shard job (the estimators it ran) to a
journal next to ``--output``, so an interrupted run resumes without recomputing finished pairs, and assembles the
final result in shard order, so a resumed, a multi-process and a Ray run give the same numbers.

``seconds`` of an estimator is the wall time of its ``EstimationPipeline.run`` calls (estimator plus
reward shapers), summed over shards. It excludes the shared answer extraction/clustering and grading,
which are reported once under ``harness``; ``rollouts_per_second`` is rollouts / ``seconds``.
"""

from __future__ import annotations

import base64
import functools
import gc
import hashlib
import importlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ttrl.core.answers import AnswerEngine
from ttrl.core.config import ComponentSpec, RunConfig
from ttrl.core.errors import EstimatorFailure, EstimatorInputError, OptionError, UnknownNameError, UserError
from ttrl.core.estimation import EstimationPipeline, resolve
from ttrl.core.metrics import GroupScore, MetricsAccumulator, grade_group, label_support, score_group
from ttrl.core.plugins import PluginSet, load_plugins
from ttrl.core.data import GroupRecord
from ttrl.core.registry import ANSWERS, Registry

JOURNAL_VERSION = 2  # 2: input checks per shard, columns as DTYPE:BASE64
#: Groups per shard job: each shard costs a journal line, a flush and a dispatch, about 0.1-0.3 ms
#: together, which 1024 groups of even majority vote (~17 us a group) amortise to ~1% of its time.
DEFAULT_SHARD_SIZE = 1024
#: Errors kept per estimator and shard (the count is always complete).
ERRORS_KEPT = 20
_SCORE_FIELDS = tuple(GroupScore.__dataclass_fields__)
_OPTIONAL_SCORES = frozenset({"label_accuracy", "reward_accuracy", "majority_ratio"})
#: Score fields that depend only on the rollouts' correctness: journalled once per shard, not per estimator.
_TRUTH_SCORES = ("ground_truth_ratio", "pass_at_n", "pair_count")


class BenchInterrupted(UserError):
    """Ctrl-C or a dead worker: finished results are in the journal, ``--resume`` completes the run."""

    exit_code = 130


@dataclass(frozen=True)
class PluginRecipe:
    """How to rebuild the same plugin set in a worker process or on a Ray node.

    ``modules`` are importable module names added as extra plugins (``ttrl bench --plugin MODULE``),
    on top of the built-ins and, when ``entry_points`` is true, every installed ``ttrl`` plugin.
    """

    entry_points: bool = True
    modules: tuple[str, ...] = ()

    def load(self) -> PluginSet:
        return _load_recipe(self)


@functools.cache
def _load_recipe(recipe: PluginRecipe) -> PluginSet:
    extra = []
    for name in recipe.modules:
        try:
            extra.append((name, importlib.import_module(name)))
        except ImportError as exc:
            raise UserError(
                f"--plugin {name!r} cannot be imported ({exc}). Give an importable module name "
                "(on PYTHONPATH in every worker) that implements ttrl hooks."
            ) from None
    return load_plugins(entry_points=recipe.entry_points, extra=extra, warn=False)


@dataclass(frozen=True)
class BenchPlan:
    """Everything a shard job needs besides its groups; picklable, sent once to every worker."""

    specs: tuple[ComponentSpec, ...]
    config: dict[str, Any]  # RunConfig.model_dump(): answers settings and reward shaping
    recipe: PluginRecipe = PluginRecipe()
    keep_details: bool = False

    @property
    def labels(self) -> list[str]:
        return [s.label or s.name for s in self.specs]

    def key(self) -> str:
        """A stable identity of the plan (specs, settings, plugins), for caches and the resume check."""
        return json.dumps(
            {
                "specs": [s.model_dump(mode="json") for s in self.specs],
                "config": self.config,
                "plugins": [self.recipe.entry_points, list(self.recipe.modules)],
                "keep_details": self.keep_details,
            },
            sort_keys=True,
            default=str,
        )


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
        its result says how many groups lack them and the first problem, and the run skips it (see
        :func:`assemble`). Checking here, not over the whole data set first, keeps the check on the
        worker that already holds the groups.
        """
        engine = self.engine
        start = time.perf_counter()
        missing = {}
        for label in labels:
            problem = _input_problem(self.pipelines[label], records)
            if problem is not None:
                missing[label] = problem
        validation = time.perf_counter() - start
        start = time.perf_counter()
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
        shared = time.perf_counter() - start
        results = {}
        for label in labels:
            if label in missing:
                count, first = missing[label]
                results[label] = {"seconds": 0.0, "scoring_seconds": 0.0, "scores": {}, "failed_groups": 0,
                                  "errors": [], "missing_inputs": count, "first_missing": first}
            else:
                results[label] = self._run_estimator(self.pipelines[label], records, classes, truths)
        start = time.perf_counter()
        truth_columns = {}
        for result in results.values():
            if result["scores"]:  # equal for every estimator that ran
                truth_columns = {k: result["scores"].pop(k) for k in _TRUTH_SCORES}
        # freeing the shard's answer classes is part of their cost, not the harness's
        del classes, truths
        shared += time.perf_counter() - start
        return {
            "shard": index,
            "groups": len(records),
            "shared_seconds": shared,
            "validation_seconds": validation,
            "truth": truth_columns,
            "estimators": results,
        }

    def _run_estimator(self, pipeline, records, classes, truths) -> dict[str, Any]:
        estimates: list[Any] = []
        start = time.perf_counter()
        for record, c in zip(records, classes):
            try:
                estimates.append(pipeline.run(record.group, classes=c))
            except (EstimatorFailure, EstimatorInputError, OptionError) as exc:
                estimates.append(exc)
        seconds = time.perf_counter() - start

        scoring_start = time.perf_counter()
        engine = self.engine
        columns: dict[str, list] = {name: [] for name in _SCORE_FIELDS}
        errors, failed = [], 0
        rewards_correct: list[float] = []
        rewards_incorrect: list[float] = []
        for record, c, truth, est in zip(records, classes, truths, estimates):
            if isinstance(est, Exception):
                failed += 1
                if len(errors) < ERRORS_KEPT:
                    reason = est.reason if isinstance(est, EstimatorFailure) else str(est)
                    errors.append({"group": record.group.id, "error": reason})
                # scored like `ttrl estimate` writes a failed group: no label, every reward 0
                rewards, label = [0.0] * len(record.group.rollouts), None
            else:
                rewards, label = est.rewards, est.label
            if truth is None:
                continue
            label_correct, label_size = _label_facts(engine, c, truth, label)
            score = score_group(rewards, truth.correct, label=label, label_correct=label_correct, label_size=label_size)
            for name in _SCORE_FIELDS:
                columns[name].append(getattr(score, name))
            if self.keep_details:
                for r, ok in zip(rewards, truth.correct):
                    (rewards_correct if ok else rewards_incorrect).append(r)
        out = {"seconds": seconds, "scores": {k: pack(v) for k, v in columns.items()},
               "failed_groups": failed, "errors": errors}
        if self.keep_details:
            out["rewards"] = {"correct": pack(rewards_correct), "incorrect": pack(rewards_incorrect)}
        del estimates, columns  # freed inside the timed part: deallocation is scoring's cost too
        out["scoring_seconds"] = time.perf_counter() - scoring_start
        return out


def _label_facts(engine: AnswerEngine, classes, truth, label: str | None) -> tuple[bool | None, int | None]:
    """Whether ``label`` is right and its class size; what ``evaluate_group`` computes, without
    equivalence checks when the label is one of the classes' representatives (as voting labels are):
    grading already decided each class's correctness."""
    if label is None:
        return None, None
    for k, rep in enumerate(classes.representatives):
        if rep == label:
            first = classes.class_ids.index(k)
            return truth.correct[first], classes.sizes()[k]
    return engine.equivalent(label, truth.reference, truth.task), label_support(engine, classes, label, truth.task)


class Packed(str):
    """A column packed by :func:`pack`: base64 text, which JSON needs no escaping for."""

    __slots__ = ()


#: Float widths :func:`pack` tries, narrowest first; float64 always holds the values exactly.
_PACK_DTYPES = ("f2", "f4")


def pack(values: Sequence[float | None]) -> Packed:
    """Numbers (None as NaN) as ``"DTYPE:BASE64"``: an exact round trip, far cheaper than JSON lists.

    DTYPE is the narrowest little-endian float that holds every value exactly: scores such as k/N
    for N = 16 or counts fit float16, a quarter of the journal's bytes at float64.
    """
    array = np.array([np.nan if v is None else v for v in values], dtype="<f8")
    kind = "f8"
    with np.errstate(over="ignore"):
        for narrow in _PACK_DTYPES:
            candidate = array.astype("<" + narrow)
            if np.array_equal(candidate.astype("<f8"), array, equal_nan=True):
                array, kind = candidate, narrow
                break
    return Packed(kind + ":" + base64.b64encode(array.tobytes()).decode("ascii"))


def unpack(text: str) -> np.ndarray:
    kind, _, data = text.rpartition(":")  # base64 has no ':'; journal version 1 wrote bare float64
    return np.frombuffer(base64.b64decode(data), dtype="<" + (kind or "f8")).astype("<f8")


def _scores_from(columns: dict[str, np.ndarray]) -> list[GroupScore]:
    as_lists = []
    for name in _SCORE_FIELDS:
        values = columns[name].tolist()
        if name == "pair_count":
            values = [int(v) for v in values]
        elif name in _OPTIONAL_SCORES:
            values = [None if v != v else v for v in values]  # NaN stands for None
        as_lists.append(values)
    return [GroupScore(*row) for row in zip(*as_lists)]


_CONTEXTS: dict[str, ShardContext] = {}


def _context_for(plan: BenchPlan) -> ShardContext:
    key = plan.key()
    if key not in _CONTEXTS:
        if len(_CONTEXTS) > 8:  # a sweep or a test session builds a few plans; don't keep them all
            _CONTEXTS.clear()
        _CONTEXTS[key] = ShardContext(plan, plan.recipe.load().registry)
    return _CONTEXTS[key]


def run_shard_job(plan: BenchPlan, index: int, groups: Sequence[GroupRecord] | GroupSlice, labels: Sequence[str]) -> dict[str, Any]:
    """Entry point of a worker (process or Ray task): rebuild the plugins once, load and run one shard."""
    context = _context_for(plan)
    start = time.perf_counter()
    records = groups.load() if isinstance(groups, GroupSlice) else groups
    loaded = time.perf_counter() - start
    result = context.run_shard(index, records, labels)
    result["load_seconds"] = loaded
    return result


# -- executors ---------------------------------------------------------------------------------------

class LocalExecutor:
    """Runs shard jobs one after another in this process."""

    description = "1 process"

    def __init__(self, context: ShardContext | None = None):
        self.context = context

    #: the groups are already in this process: jobs carry them, nothing is loaded again
    loads_slices = False

    def run(self, plan: BenchPlan, jobs):
        context = self.context or _context_for(plan)
        for job in jobs:
            yield context.run_shard(job.index, job.records, job.labels)

    def close(self) -> None:
        pass


# -- journal -----------------------------------------------------------------------------------------

class Journal:
    """Append-only JSON Lines record of finished shard jobs (which estimators each ran), flushed per line.

    Flushed, not fsynced: the lines survive a killed process or worker (the case ``--resume`` is for);
    an fsync per shard would cost more than majority vote itself on slow disks.
    """

    def __init__(self, path: Path, fingerprint: str, resume: bool):
        self.path = path
        self.done: dict[tuple[str, int], dict[str, Any]] = {}
        self.shard_info: dict[int, dict[str, Any]] = {}
        if resume and path.exists():
            self._load(fingerprint)
            self.handle = path.open("a", encoding="utf-8")
        else:
            self.handle = path.open("w", encoding="utf-8")
            self._write({"ttrl_bench_journal": JOURNAL_VERSION, "fingerprint": fingerprint})

    def _load(self, fingerprint: str) -> None:
        with self.path.open(encoding="utf-8") as handle:
            text = handle.read()
        complete = text[: text.rfind("\n") + 1]
        if complete != text:
            # drop the line the interruption cut short, so the lines appended next start on their own
            self.path.write_text(complete, encoding="utf-8")
        lines = complete.split("\n")
        try:
            header = json.loads(lines[0])
        except (json.JSONDecodeError, IndexError):
            header = {}
        if header.get("fingerprint") != fingerprint:
            raise UserError(
                f"--resume: {self.path} belongs to a different run (other data, estimators, options or "
                "shard size). Repeat the original command with --resume, or drop --resume to start over."
            )
        for line in lines[1:]:
            if line.strip():
                self._remember(json.loads(line))

    def _remember(self, item: dict[str, Any]) -> None:
        for label, result in item["estimators"].items():
            self.done[(label, item["shard"])] = result
        known = self.shard_info.get(item["shard"])
        if known is None or item["truth"]:  # a job whose estimators all lacked inputs has no truth columns
            self.shard_info[item["shard"]] = {k: v for k, v in item.items() if k != "estimators"}

    def _write(self, obj: dict[str, Any]) -> None:
        self.handle.write(journal_line(obj))

    def add(self, shard_result: dict[str, Any]) -> None:
        """One line per finished shard job, holding every estimator it ran."""
        self._write(shard_result)
        self.handle.flush()
        self._remember(shard_result)

    def close(self) -> None:
        self.handle.close()


class MemoryJournal(Journal):
    """The journal of a run without ``--output``: nothing to resume from, nothing written."""

    def __init__(self):
        self.path = None
        self.done, self.shard_info = {}, {}

    def add(self, shard_result: dict[str, Any]) -> None:
        self._remember(shard_result)

    def close(self) -> None:
        pass


#: Stands in for each packed column while the rest of a journal line is encoded.
_SLOT = "\x00packed-column\x00"
_SLOT_JSON = json.dumps(_SLOT)


def journal_line(obj: dict[str, Any]) -> str:
    """``json.dumps(obj) + "\\n"``, with the :class:`Packed` columns spliced in rather than encoded.

    The columns are nearly all of a line's bytes, and the JSON encoder scans every character of a
    string for escapes; base64 needs none, so encoding only the small rest keeps a shard's journal
    line cheap (the harness's overhead budget is a few percent of majority vote's time).
    """
    columns: list[str] = []

    def hollow(value: Any) -> Any:
        if type(value) is Packed:
            columns.append(value)
            return _SLOT
        if isinstance(value, dict):
            return {k: hollow(v) for k, v in value.items()}
        if isinstance(value, list):
            return [hollow(v) for v in value]
        return value

    parts = json.dumps(hollow(obj), allow_nan=False).split(_SLOT_JSON)
    if len(parts) != len(columns) + 1:  # an estimator's error message that spells the slot itself
        return json.dumps(obj, allow_nan=False) + "\n"
    pieces = [parts[0]]
    for column, rest in zip(columns, parts[1:]):
        pieces += ('"', column, '"', rest)
    pieces.append("\n")
    return "".join(pieces)


def journal_path(output: Path) -> Path:
    return output.with_name(output.name + ".partial.jsonl")


# -- the run -----------------------------------------------------------------------------------------

class GroupSlice:
    """Groups ``start:stop`` of a data set, described so that a worker can load them itself.

    Picklable and small: sending one to a worker costs bytes, not the groups. ``load()`` must return
    exactly the records the main process would have sliced from the whole set.
    """

    #: Whether ``load()`` works on any machine (a simulation), not just this one (a local file).
    anywhere = False

    def load(self) -> list[GroupRecord]:
        raise NotImplementedError


class DataSet:
    """The groups to bench and how to name them in the results.

    Either ``records`` (already in memory) or a ``source`` whose ``slice(start, stop)`` gives a
    :class:`GroupSlice` and whose ``groups`` is the number of groups. With a source, ``records``
    loads the whole set on first use; worker executors never touch it: each worker loads its own
    shards, so the main process neither builds nor pickles the groups.
    """

    def __init__(self, records: list[GroupRecord] | None = None, path: str = "", identity: str = "",
                 note: str | None = None, source: Any = None, rollouts: int | None = None):
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


@dataclass
class ShardJob:
    """One shard's pending estimators; ``records`` is None when workers load the groups themselves."""

    index: int
    start: int
    stop: int
    labels: list[str]
    records: list[GroupRecord] | None
    source: Any = None

    def payload(self, *, anywhere: bool = False) -> list[GroupRecord] | GroupSlice:
        """What a worker receives: a :class:`GroupSlice` to load, or else the groups themselves."""
        if self.source is not None:
            part = self.source.slice(self.start, self.stop)
            if part.anywhere or not anywhere:
                return part
        return self.records if self.records is not None else self.source.slice(self.start, self.stop).load()


@dataclass
class Outcome:
    """The CONTRACT.md result object plus the per-group detail the report plots need."""

    results: dict[str, Any]
    details: dict[str, dict[str, Any]] = field(default_factory=dict)


def fingerprint(plan: BenchPlan, data: DataSet, shard_size: int) -> str:
    payload = json.dumps([JOURNAL_VERSION, plan.key(), data.identity, shard_size])
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


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
    """Run ``plan`` on ``data``; see the module docstring. ``on_progress(groups)`` follows finished shards."""
    if shard_size < 1:
        raise UserError(f"--shard-size must be at least 1, got {shard_size}.")
    wall = time.perf_counter()
    # the groups live for the whole run: keep the cyclic GC from rescanning them on every collection
    gc.freeze()
    try:
        return _run(plan, data, executor, shard_size, output, resume, on_progress, registry, wall)
    finally:
        gc.unfreeze()


def _run(plan, data, executor, shard_size, output, resume, on_progress, registry, wall) -> Outcome:
    context = ShardContext(plan, registry) if registry is not None else _context_for(plan)
    executor = executor or LocalExecutor(context)
    load = 0.0
    if not data.loaded and not (getattr(executor, "loads_slices", False) and data.source is not None):
        # reading the data is any tool's cost, not the harness's: timed apart, outside the overhead
        loading = time.perf_counter()
        data.records
        load = time.perf_counter() - loading
    count = len(data)
    bounds = [(i, min(i + shard_size, count)) for i in range(0, count, shard_size)]
    labels = plan.labels

    io_start = time.perf_counter()
    if output is not None:
        try:
            journal: Journal = Journal(journal_path(output), fingerprint(plan, data, shard_size), resume)
        except OSError as exc:
            raise UserError(f"Cannot write next to --output {output}: {exc.strerror}. Check that its folder exists.") from None
    else:
        if resume:
            raise UserError("--resume needs --output: the unfinished run's results are kept next to its output file.")
        journal = MemoryJournal()
    io = time.perf_counter() - io_start
    records = data.records if data.loaded else None
    jobs = []
    for index, (start, stop) in enumerate(bounds):
        pending = [label for label in labels if (label, index) not in journal.done]
        if pending:
            jobs.append(ShardJob(index, start, stop, pending, records and records[start:stop], data.source))
        elif on_progress:
            on_progress(stop - start)
    reused = len(bounds) - len(jobs)
    computed = 0.0  # estimator, grading and scoring seconds of the shards computed by this run
    validation = 0.0
    try:
        for shard_result in executor.run(plan, jobs):
            computed += shard_result["shared_seconds"] + sum(
                r["seconds"] + r["scoring_seconds"] for r in shard_result["estimators"].values()
            )
            validation += shard_result["validation_seconds"]
            load += shard_result.pop("load_seconds", 0.0)
            io_start = time.perf_counter()
            journal.add(shard_result)
            io += time.perf_counter() - io_start
            if on_progress:
                on_progress(shard_result["groups"])
    except KeyboardInterrupt:
        raise BenchInterrupted(_interrupted_message(journal, len(bounds) * len(labels), "Interrupted")) from None
    except UserError:
        raise
    except Exception as exc:
        if type(exc).__name__ in {"BrokenProcessPool", "RayTaskError", "WorkerCrashedError", "RayActorError"}:
            raise BenchInterrupted(
                _interrupted_message(journal, len(bounds) * len(labels), f"A worker died ({type(exc).__name__})")
            ) from None
        raise
    finally:
        executor.close()
        journal.close()
    assembling = time.perf_counter()
    outcome = assemble(plan, context, data, journal, len(bounds))
    assembled = time.perf_counter()
    scoring = sum(r["scoring_seconds"] for r in journal.done.values()) + assembled - assembling
    elapsed = assembled - wall
    outcome.results["harness"].update(
        {"metrics_seconds": scoring,
         # dispatch, validation and I/O of this run; only defined in-process, where nothing runs in parallel
         "overhead_seconds": elapsed - load - computed - (assembled - assembling) if isinstance(executor, LocalExecutor) else None,
         "validation_seconds": validation,
         "journal_seconds": io,
         "load_seconds": load,
         "shard_size": shard_size, "shards": len(bounds), "shards_reused": reused,
         "executor": getattr(executor, "description", type(executor).__name__),
         "elapsed_seconds": elapsed}
    )
    return outcome


def _interrupted_message(journal: Journal, total: int, what: str) -> str:
    where = (
        f"they are saved in {journal.path}; run the same command with --resume to finish"
        if journal.path
        else "nothing was saved because no --output was given"
    )
    return f"{what} after {len(journal.done)} of {total} estimator x shard results; {where}."


def _skip_reasons(labels: Sequence[str], journal: Journal, num_shards: int, groups: int) -> dict[str, str]:
    """Estimators that some groups lack the inputs of, with how many groups and the first problem."""
    skipped = {}
    for label in labels:
        parts = [journal.done[(label, i)] for i in range(num_shards)]
        count = sum(p.get("missing_inputs", 0) for p in parts)
        if count:
            first = next(p["first_missing"] for p in parts if p.get("missing_inputs"))
            skipped[label] = f"skipped: {count} of {groups} group(s) lack its inputs. First: {first}"
    return skipped


def assemble(plan: BenchPlan, context: ShardContext, data: DataSet, journal: Journal, num_shards: int) -> Outcome:
    """The CONTRACT.md result JSON, built in shard order so every execution path gives the same numbers."""
    groups = len(data)
    rollouts = data.rollouts
    shared = sum(journal.shard_info[i]["shared_seconds"] for i in range(num_shards) if i in journal.shard_info)
    skipped = _skip_reasons(plan.labels, journal, num_shards, groups)
    entries, details = [], {}
    for spec in plan.specs:
        label = spec.label or spec.name
        estimator = context.pipelines[label].estimator
        entry: dict[str, Any] = {"name": estimator.name, "options": estimator.options_dict(), "label": label}
        if label in skipped:
            entry.update(metrics={**dict.fromkeys(_METRIC_KEYS)}, skipped=skipped[label], errors=[], failed_groups=0)
            entries.append(entry)
            continue
        parts = [journal.done[(label, i)] for i in range(num_shards)]
        accumulator = MetricsAccumulator()
        truth = [journal.shard_info[i]["truth"] for i in range(num_shards)]
        columns = {
            k: np.concatenate([unpack(t[k]) for t in truth] if k in _TRUTH_SCORES else [unpack(p["scores"][k]) for p in parts])
            for k in _SCORE_FIELDS
        }
        scores = _scores_from(columns)
        for score in scores:
            accumulator.add(score)
        seconds = sum(p["seconds"] for p in parts)
        metrics = accumulator.result()
        metrics["seconds"] = seconds
        metrics["rollouts_per_second"] = rollouts / seconds if seconds > 0 else None
        errors = [e for p in parts for e in p["errors"]][:ERRORS_KEPT]
        entry.update(metrics=metrics, skipped=None, errors=errors, failed_groups=sum(p["failed_groups"] for p in parts))
        entries.append(entry)
        if plan.keep_details:  # the report's plots need per-group scores and every reward
            details[label] = {
                "scores": {k: [getattr(s, k) for s in scores] for k in _SCORE_FIELDS},
                "rewards": {
                    which: np.concatenate([unpack(p["rewards"][which]) for p in parts]).tolist()
                    for which in ("correct", "incorrect")
                },
            }
    results = {
        "data": {"path": data.path, "groups": groups, "rollouts": rollouts},
        "estimators": entries,
        "harness": {"data_note": data.note, "answer_classes_seconds": shared},
    }
    return Outcome(results=results, details=details)


_METRIC_KEYS = (
    "label_accuracy", "reward_accuracy", "majority_ratio", "pairwise_accuracy",
    "ground_truth_ratio", "pass_at_n", "seconds", "rollouts_per_second",
)


#: Fields that differ between two runs of the same bench: wall-clock times and ``harness`` (how it ran).
RUN_FACT_KEYS = frozenset({"seconds", "rollouts_per_second", "harness"})


def without_run_facts(obj: Any) -> Any:
    """A result object without timings and the ``harness`` section, to compare two runs."""
    if isinstance(obj, dict):
        return {k: without_run_facts(v) for k, v in obj.items() if k not in RUN_FACT_KEYS}
    if isinstance(obj, list):
        return [without_run_facts(v) for v in obj]
    return obj

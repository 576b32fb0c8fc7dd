"""The answer engine: extract answers from rollouts and group them into equivalence classes.

Majority voting is only as good as deciding which answers are the same, and rollouts are untrusted
text. The engine (see ``docs/answers.md``):

- extracts with the extractor registered for the group's task (``register_extractors`` hook);
- compares with the extractor's ``compare`` mode: ``exact`` (normalised strings), ``number`` (exact
  rationals, else normalised strings) or ``math`` (those fast paths, then math-verify, symmetric, with
  equations decided by the relation they define and its known false equivalences vetoed);
- follows documented :class:`Conventions` where graders differ (percent, rounded decimals);
- runs math-verify only in sandboxed worker processes with a wall-clock limit that works from any
  thread (:mod:`.sandbox`), within a :class:`Budget` per group;
- never fails silently: timeouts, worker failures, a checker that cannot start and groups past their
  budget are counted in each group's diagnostics and in :meth:`AnswerEngine.health`;
- never evaluates model text in the caller's process.

The engine is safe to share between threads: its caches are locked and the worker pool hands each
request to one worker at a time. For plugin authors, :meth:`AnswerEngine.for_task` binds a task once::

    math = engine.for_task("math")
    math.extract(text); math.equivalent("0.5", r"\\frac12"); math.explain("a+3z=0", "0").reason
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..data import AnswerClasses, RolloutGroup
from ..errors import UserError
from ..registry import ExtractorInfo, Registry
from .equivalence import (
    COMPARE_MODES,
    DEFAULT_BUDGET,
    Budget,
    CheckStats,
    SemanticChecker,
    Verdict,
    cluster,
    compare_atoms,
    make_atom,
)
from .normalize import DEFAULT_CONVENTIONS, MAX_NORMALIZE_CHARS, Conventions, normalize_answer
from .sandbox import CheckerPool

__all__ = ["AnswerEngine", "Budget", "Conventions", "TaskAnswers", "Verdict", "normalize_answer"]

_HEALTH_COUNTERS = ("groups", "degraded_groups", "timeouts", "failures", "round_trips", "extractor_errors")


class AnswerEngine:
    """Extraction and equivalence for the tasks whose extractors are registered."""

    def __init__(
        self,
        registry: Registry,
        *,
        timeout_seconds: float = 5.0,
        task_override: str | None = None,
        pool: CheckerPool | None = None,
        conventions: Conventions = DEFAULT_CONVENTIONS,
        budget: Budget = DEFAULT_BUDGET,
    ):
        self.registry = registry
        self.timeout_seconds = timeout_seconds
        self.task_override = task_override
        self.conventions = conventions
        self.budget = budget
        self.checker = SemanticChecker(timeout_seconds, pool, conventions)
        self._health_lock = threading.Lock()
        self._health: dict[str, Any] = dict.fromkeys(_HEALTH_COUNTERS, 0)
        self._health["checker_unavailable"] = None

    @classmethod
    def from_settings(cls, registry: Registry, settings: Any, **kwargs: Any) -> AnswerEngine:
        """An engine from a run config's ``answers:`` section (``timeout_seconds``, ``task``,
        ``percent``, ``decimals``, ``group_seconds``, ``group_requests``)."""
        conventions = Conventions(percent=settings.percent, decimals=settings.decimals)
        budget = Budget(requests=settings.group_requests, seconds=settings.group_seconds)
        return cls(registry, timeout_seconds=settings.timeout_seconds, task_override=settings.task,
                   conventions=conventions, budget=budget, **kwargs)

    def task_of(self, group: RolloutGroup) -> str:
        return self.task_override or group.task

    def for_task(self, task: str) -> TaskAnswers:
        """This engine bound to one task: ``extract(text)``, ``equivalent(a, b)``, ``explain(a, b)``, ``cluster(answers)``."""
        self._extractor(task)  # an unknown task or a bad compare mode fails here, not at first use
        return TaskAnswers(self, task)

    def _extractor(self, task: str) -> ExtractorInfo:
        extractor = self.registry.extractors.get(task)
        if extractor.compare not in COMPARE_MODES:
            raise UserError(
                f"Extractor {extractor.name!r} (plugin {extractor.plugin!r}) registered compare="
                f"{extractor.compare!r}; the answer engine knows {', '.join(COMPARE_MODES)}. "
                "Fix the plugin's register_extractors call."
            )
        return extractor

    def extract(self, text: str, task: str) -> str | None:
        """The answer in ``text`` for ``task``, or ``None``. A failing extractor degrades this rollout
        only (and is counted in :meth:`health`); an answer that normalises to nothing is no answer."""
        extractor = self._extractor(task)
        try:
            answer = extractor.function(text)
        except Exception:
            self._count(extractor_errors=1)
            return None
        if answer is None:
            return None
        answer = str(answer)
        if len(answer) > MAX_NORMALIZE_CHARS:
            return answer  # compared as an exact string; not worth normalising
        return answer if normalize_answer(answer) else None

    def explain(self, a: str | None, b: str | None, task: str) -> Verdict:
        """Whether two answers are the same for ``task``, and why (:class:`Verdict`): what decided,
        and whether the check failed (a timeout, a crashed or missing checker), which counts as
        different."""
        if a is None or b is None:
            return Verdict(False, "no answer")
        compare = self._extractor(task).compare
        stats = CheckStats(budget=Budget(requests=8, seconds=max(self.budget.seconds, 4 * self.timeout_seconds)))
        verdict = compare_atoms(make_atom(a, compare, self.conventions), make_atom(b, compare, self.conventions),
                                compare, self.checker, stats)
        self._record(stats, groups=0)
        return verdict

    def equivalent(self, a: str | None, b: str | None, task: str) -> bool:
        """Whether two answers are the same for ``task`` (``None`` is equivalent to nothing)."""
        return self.explain(a, b, task).equivalent

    def cluster(self, answers: Sequence[str | None], task: str) -> AnswerClasses:
        """Equivalence classes of ``answers`` (ids in order of first appearance, -1 = no answer)."""
        started = time.perf_counter()
        classes = cluster(answers, self._extractor(task).compare, self.checker, self.budget)
        classes.diagnostics["seconds"] = time.perf_counter() - started
        self._record(classes.diagnostics)
        return classes

    def classify(self, group: RolloutGroup) -> AnswerClasses:
        """Extract (unless pre-extracted) and cluster the answers of a group's rollouts."""
        task = self.task_of(group)
        answers = [r.answer if r.answer is not None else self.extract(r.text, task) for r in group.rollouts]
        return self.cluster(answers, task)

    # -- health: what trainers log ---------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """Counters since this engine was made: ``groups`` clustered, ``degraded_groups`` (past their
        budget), checker ``timeouts`` and ``failures``, ``round_trips``, ``extractor_errors``, and
        ``checker_unavailable`` (why the checker cannot start, else ``None``). Log them with the
        training metrics: a rising ``failures`` or a set ``checker_unavailable`` means the vote is
        running on normalised text only."""
        with self._health_lock:
            health = dict(self._health)
        health["checker_unavailable"] = health["checker_unavailable"] or self.checker.pool.unavailable
        return health

    def _count(self, **increments: int) -> None:
        with self._health_lock:
            for name, value in increments.items():
                self._health[name] += value

    def _record(self, stats: CheckStats | dict[str, Any], groups: int = 1) -> None:
        data = stats.to_dict() if isinstance(stats, CheckStats) else stats
        with self._health_lock:
            self._health["groups"] += groups
            self._health["degraded_groups"] += int(bool(data.get("degraded")) and groups > 0)
            for name in ("timeouts", "failures", "round_trips"):
                self._health[name] += int(data.get(name, 0))
            if data.get("checker_unavailable"):
                self._health["checker_unavailable"] = data["checker_unavailable"]


@dataclass(frozen=True)
class TaskAnswers:
    """An :class:`AnswerEngine` bound to one task (from :meth:`AnswerEngine.for_task`)."""

    engine: AnswerEngine
    task: str

    def extract(self, text: str) -> str | None:
        return self.engine.extract(text, self.task)

    def equivalent(self, a: str | None, b: str | None) -> bool:
        return self.engine.equivalent(a, b, self.task)

    def explain(self, a: str | None, b: str | None) -> Verdict:
        return self.engine.explain(a, b, self.task)

    def cluster(self, answers: Sequence[str | None]) -> AnswerClasses:
        return self.engine.cluster(answers, self.task)

    def classify_texts(self, texts: Sequence[str]) -> AnswerClasses:
        """Extract the answer of each response text and cluster them."""
        return self.cluster([self.extract(text) for text in texts])

"""The answer engine: extract answers from rollouts and group them into equivalence classes.

Majority voting is only as good as deciding which answers are the same, and rollouts are untrusted
text. The engine (see ``docs/answers.md``):

- extracts with the extractor registered for the group's task (``register_extractors`` hook);
- compares with the extractor's ``compare`` mode: ``exact`` (normalised strings), ``number`` (exact
  rationals, else normalised strings) or ``math`` (those fast paths, then math-verify, symmetric, with
  its known false equivalences vetoed);
- runs math-verify only in sandboxed worker processes with a wall-clock limit that works from any
  thread (:mod:`.sandbox`); a timeout means "not equivalent" and is counted in diagnostics;
- never evaluates model text in the caller's process.

The engine is safe to share between threads: its caches are locked and the worker pool hands each
request to one worker at a time.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from ..data import AnswerClasses, RolloutGroup
from ..errors import UserError
from ..registry import ExtractorInfo, Registry
from .equivalence import COMPARE_MODES, CheckStats, SemanticChecker, atoms_equivalent, cluster, make_atom
from .normalize import MAX_NORMALIZE_CHARS, normalize_answer
from .sandbox import CheckerPool

__all__ = ["AnswerEngine", "normalize_answer"]


class AnswerEngine:
    """Extraction and equivalence for the tasks whose extractors are registered."""

    def __init__(
        self,
        registry: Registry,
        *,
        timeout_seconds: float = 5.0,
        task_override: str | None = None,
        pool: CheckerPool | None = None,
    ):
        self.registry = registry
        self.timeout_seconds = timeout_seconds
        self.task_override = task_override
        self.checker = SemanticChecker(timeout_seconds, pool)

    def task_of(self, group: RolloutGroup) -> str:
        return self.task_override or group.task

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
        only; an answer that normalises to nothing is no answer (it must not win a vote)."""
        extractor = self._extractor(task)
        try:
            answer = extractor.function(text)
        except Exception:
            return None
        if answer is None:
            return None
        answer = str(answer)
        if len(answer) > MAX_NORMALIZE_CHARS:
            return answer  # compared as an exact string; not worth normalising
        return answer if normalize_answer(answer) else None

    def equivalent(self, a: str | None, b: str | None, task: str) -> bool:
        """Whether two answers are the same for ``task`` (``None`` is equivalent to nothing)."""
        if a is None or b is None:
            return False
        compare = self._extractor(task).compare
        atom_a, atom_b = make_atom(a, compare), make_atom(b, compare)
        if not atom_a.normalized or not atom_b.normalized:
            return False  # an empty answer is no answer, even compared with itself
        if a == b:
            return True
        same, _ = atoms_equivalent(atom_a, atom_b, compare, self.checker, CheckStats())
        return same

    def cluster(self, answers: Sequence[str | None], task: str) -> AnswerClasses:
        """Equivalence classes of ``answers`` (ids in order of first appearance, -1 = no answer)."""
        started = time.perf_counter()
        classes = cluster(answers, self._extractor(task).compare, self.checker)
        classes.diagnostics["seconds"] = time.perf_counter() - started
        return classes

    def classify(self, group: RolloutGroup) -> AnswerClasses:
        """Extract (unless pre-extracted) and cluster the answers of a group's rollouts."""
        task = self.task_of(group)
        answers = [r.answer if r.answer is not None else self.extract(r.text, task) for r in group.rollouts]
        return self.cluster(answers, task)

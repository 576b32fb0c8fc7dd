"""The answer engine: extract answers from rollouts and group them into equivalence classes.

Interim implementation: answers are compared as normalised strings. The answer-engine issue replaces
the internals (math-verify behind fast paths, wall-clock limits); the interface stays.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from .data import AnswerClasses, RolloutGroup
from .registry import Registry

_SPACES = re.compile(r"\s+")


def normalize_answer(answer: str) -> str:
    text = answer.strip().strip("$").strip()
    text = text.replace("\\left", "").replace("\\right", "").replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    text = _SPACES.sub("", text)
    return text.rstrip(".")


class AnswerEngine:
    """Extraction and equivalence for the tasks whose extractors are registered."""

    def __init__(self, registry: Registry, *, timeout_seconds: float = 5.0, task_override: str | None = None):
        self.registry = registry
        self.timeout_seconds = timeout_seconds
        self.task_override = task_override

    def task_of(self, group: RolloutGroup) -> str:
        return self.task_override or group.task

    def extract(self, text: str, task: str) -> str | None:
        extractor = self.registry.extractors.get(task)
        try:
            answer = extractor.function(text)
        except Exception:
            return None
        if answer is None or not str(answer).strip():
            return None
        return str(answer)

    def equivalent(self, a: str | None, b: str | None, task: str) -> bool:
        if a is None or b is None:
            return False
        return normalize_answer(a) == normalize_answer(b)

    def cluster(self, answers: Sequence[str | None], task: str) -> AnswerClasses:
        index: dict[str, int] = {}
        representatives: list[str] = []
        class_ids: list[int] = []
        for answer in answers:
            if answer is None:
                class_ids.append(-1)
                continue
            key = normalize_answer(answer)
            if key not in index:
                index[key] = len(representatives)
                representatives.append(answer)
            class_ids.append(index[key])
        return AnswerClasses(list(answers), class_ids, representatives, {"method": "normalised-string"})

    def classify(self, group: RolloutGroup) -> AnswerClasses:
        """Extract (unless pre-extracted) and cluster the answers of a group's rollouts."""
        task = self.task_of(group)
        answers = [r.answer if r.answer is not None else self.extract(r.text, task) for r in group.rollouts]
        return self.cluster(answers, task)

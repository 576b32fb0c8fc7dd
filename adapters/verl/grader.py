"""verl's per-sample reward function for ttrl runs: ground-truth grading, for validation and metrics.

verl's reward loop scores every response on its own as it is generated
(``reward.custom_reward_function``). ttrl points it here: 1.0 when the response's answer is
equivalent to the dataset's ``ground_truth`` under ttrl's answer engine, else 0.0. Validation
(``val-core/<data_source>/acc/mean@N``, ``maj@N``, ``best@N``) reads these scores. Training never
does: ttrl's trainer replaces them with the estimator's rewards before verl computes advantages
(:mod:`ttrl.adapters.verl.trainer`).
"""

from __future__ import annotations

import functools
from typing import Any

from ttrl.core.answers.normalize import normalize_answer



@functools.cache
def _engine(timeout_seconds: float):
    from ttrl.core.answers import AnswerEngine
    from ttrl.core.plugins import default_plugins

    return AnswerEngine(default_plugins().registry, timeout_seconds=timeout_seconds)


def grade(response: str, ground_truth: Any, task: str = "math", timeout_seconds: float = 5.0) -> float:
    """1.0 when ``response``'s answer is equivalent to ``ground_truth``, else 0.0 (also without one)."""
    return _grade(response, ground_truth, task, timeout_seconds)[0]


def _grade(response: str, ground_truth: Any, task: str, timeout_seconds: float) -> tuple[float, str | None]:
    engine = _engine(float(timeout_seconds))
    answer = engine.extract(response, task)
    if answer is None or ground_truth is None or str(ground_truth).strip() == "":
        return 0.0, answer
    return (1.0 if engine.equivalent(answer, str(ground_truth), task) else 0.0), answer


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: Any,
    extra_info: Any = None,
    *,
    task: str = "math",
    timeout_seconds: float = 5.0,
    **_: Any,
) -> dict:
    """verl's ``compute_score`` signature; ``task`` and ``timeout_seconds`` come from the run config's
    ``answers:`` through ``reward.custom_reward_function.reward_kwargs``. ``acc`` is what verl's
    validation averages (mean@N, best@N); ``pred``, the normalised answer ("" for none), is what its
    maj@N votes over (by exact string, where ttrl's majority_vote compares answers by equivalence)."""
    score, answer = _grade(solution_str, ground_truth, task, timeout_seconds)
    return {"score": score, "acc": score, "pred": normalize_answer(answer) if answer is not None else ""}

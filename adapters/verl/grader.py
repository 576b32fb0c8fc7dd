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
import os
from typing import Any

TASK_ENV = "TTRL_VERL_TASK"


@functools.cache
def _engine():
    from ttrl.core.plugins import default_plugins

    from ttrl.core.answers import AnswerEngine

    return AnswerEngine(default_plugins().registry)


def grade(response: str, ground_truth: Any, task: str = "math") -> float:
    """1.0 when ``response``'s answer is equivalent to ``ground_truth``, else 0.0 (also without one)."""
    if ground_truth is None or str(ground_truth).strip() == "":
        return 0.0
    engine = _engine()
    answer = engine.extract(response, task)
    return 1.0 if answer is not None and engine.equivalent(answer, str(ground_truth), task) else 0.0


def compute_score(data_source: str, solution_str: str, ground_truth: Any, extra_info: Any = None, **_: Any) -> dict:
    """verl's ``compute_score`` signature; ``acc`` is what verl's validation metrics average."""
    score = grade(solution_str, ground_truth, os.environ.get(TASK_ENV) or "math")
    return {"score": score, "acc": score}

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
import json
from collections.abc import Mapping, Sequence
from typing import Any

from ttrl.core.answers.normalize import normalize_answer


@functools.cache
def _engine(answers_json: str):
    from ttrl.core.answers import AnswerEngine
    from ttrl.core.config import AnswerSettings
    from ttrl.core.plugins import default_plugins

    settings = AnswerSettings.model_validate(json.loads(answers_json))
    return AnswerEngine.from_settings(default_plugins().registry, settings), settings.task or "math"


def _plain(value: Any) -> Any:
    """Plain Python values from verl's OmegaConf nodes (mappings and lists nest: answers: has
    per-task threshold tables)."""
    if isinstance(value, Mapping):
        return {str(key): _plain(value[key]) for key in value}
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return [_plain(item) for item in value]
    return value


def _grade(response: str, ground_truth: Any, answers: dict | None) -> tuple[float, str | None]:
    # verl hands reward_kwargs over as OmegaConf nodes
    engine, task = _engine(json.dumps(_plain(answers or {}), sort_keys=True))
    answer = engine.extract(response, task)
    if answer is None or ground_truth is None or str(ground_truth).strip() == "":
        return 0.0, answer
    return (1.0 if engine.equivalent(answer, str(ground_truth), task) else 0.0), answer


def grade(response: str, ground_truth: Any, answers: dict | None = None) -> float:
    """1.0 when ``response``'s answer is equivalent to ``ground_truth``, else 0.0 (also without one).
    ``answers``: the run config's ``answers:`` section (task, timeouts, conventions)."""
    return _grade(response, ground_truth, answers)[0]


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: Any,
    extra_info: Any = None,
    *,
    answers: dict | None = None,
    **_: Any,
) -> dict:
    """verl's ``compute_score`` signature; ``answers`` (the run config's ``answers:`` section) comes
    through ``reward.custom_reward_function.reward_kwargs``. ``acc`` is what verl's validation
    averages (mean@N, best@N); ``pred``, the normalised answer ("" for none), is what its maj@N votes
    over (by exact string, where ttrl's majority_vote compares answers by equivalence)."""
    score, answer = _grade(solution_str, ground_truth, answers)
    return {"score": score, "acc": score, "pred": normalize_answer(answer) if answer is not None else ""}

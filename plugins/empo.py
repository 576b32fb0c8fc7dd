"""EMPO (Zhang et al., "Right Question is Already Half the Answer: Fully Unsupervised LLM Reasoning
Incentivization", arXiv:2504.05812, 2025): semantic entropy minimisation.

The N rollouts' answers are clustered into semantic classes c (the answer engine's equivalence
classes); a rollout without an answer is a class of its own. With p(c) = n(c)/N,

    H   = −Σ_c p(c) log p(c)                      semantic entropy of the group
    r_i = p(c_i)          if H < ρ · log N        (and the rollout has an answer)
    r_i = no_answer_reward  for a rollout without an answer (when the group is kept)
    r_i = 0               for every rollout when H ≥ ρ · log N

H = log N exactly when no two rollouts agree, so the default ρ = 1 drops only groups in which every
answer is different: the entropy threshold of the authors' math reward. ``min_majority_ratio``
also drops groups whose largest class is below that fraction of N (their verl recipe's group
filter; their free-form reward drops groups under 0.2). The label is the largest class.
"""

from __future__ import annotations

import math

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ttrl.core.data import Estimate, RolloutGroup
from ttrl.core.hookspecs import hookimpl


class EmpoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_entropy_ratio: float = Field(
        1.0, gt=0.0, le=1.0,
        description="ρ: groups whose semantic entropy is at least ρ·log N get all rewards 0 (EMPO: 1, i.e. "
        "only groups where all N answers differ).",
    )
    min_majority_ratio: float = Field(
        0.0, ge=0.0, le=1.0,
        description="Also give 0 to groups whose largest class holds less than this fraction of N "
        "(EMPO's verl group filter: 0.3, off by default; its free-form reward: 0.2).",
    )
    no_answer_reward: float = Field(
        0.0, description="Reward of a rollout without an answer in a kept group (EMPO math: 0; free-form: -0.5)."
    )


def estimate_empo(group: RolloutGroup, options: EmpoOptions) -> Estimate:
    """Reward = share of the group in the rollout's semantic answer class, unless the group is too uncertain (EMPO)."""
    classes = group.classes
    n = len(group.rollouts)
    ids = np.asarray(classes.class_ids, dtype=np.int64)
    sizes = np.asarray(classes.sizes(), dtype=np.float64)
    unanswered = int((ids < 0).sum())
    # each rollout without an answer is a class of one: it adds (1/N) log N to the entropy
    p = np.concatenate([sizes, np.ones(unanswered)]) / n if n else np.zeros(0)
    entropy = float(-(p * np.log(p)).sum()) if n else 0.0
    threshold = options.max_entropy_ratio * math.log(n) if n else 0.0
    largest = float(sizes.max()) / n if sizes.size else 0.0
    label = classes.representatives[int(np.argmax(sizes))] if sizes.size else None
    diagnostics = {
        "semantic_entropy": entropy,
        "entropy_threshold": threshold,
        "answers": list(classes.representatives),
        "probabilities": (sizes / n).tolist() if n else [],
        "majority_ratio": largest,
    }
    reason = None
    if label is None:
        reason = "no rollout has an extractable answer"
    elif entropy >= threshold:
        reason = f"semantic entropy {entropy:.3f} is not below {options.max_entropy_ratio} · log N = {threshold:.3f}"
    elif largest < options.min_majority_ratio:
        reason = f"largest class is {largest:.3f} of N, below min_majority_ratio {options.min_majority_ratio}"
    if reason is not None:
        diagnostics.update(filtered=True, reason=reason, candidate_label=label)
        return Estimate([0.0] * n, None, diagnostics)
    rewards = [float(sizes[k]) / n if k >= 0 else options.no_answer_reward for k in classes.class_ids]
    return Estimate(rewards, label, diagnostics)


@hookimpl
def register_estimators(register):
    register("empo", estimate_empo, options=EmpoOptions, aliases=("semantic_entropy",), requires=("answers",))

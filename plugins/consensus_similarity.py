"""Similarity to the group's consensus: test-time rewards for outputs without an exact answer.

Majority voting (TTRL; Zuo et al., arXiv:2504.16084) needs answers that are equal or not. For free
text and code the consensus is instead the group's *medoid* — the answer a minimum-Bayes-risk choice
under the similarity would pick (Kumar & Byrne, NAACL 2004; the "most consistent response" of
Universal Self-Consistency, Chen et al., arXiv:2311.17311) — and each rollout is rewarded by how
similar it is to it, as reference-free RL on non-verifiable outputs does with a pseudo-reference
aggregated from the rollouts (Compute as Teacher, Jayalath et al., arXiv:2509.14234). EMPO
(Zhang et al., arXiv:2504.05812) clusters free-form answers by meaning; the thresholded variant
below is that idea with a lexical or structural similarity in place of an entailment model.

With answers a_1..a_N (rollouts without an answer are left out and get 0) and a similarity s:

    c   = argmax_i (1/(M-1)) Σ_{j≠i} s(a_i, a_j)    over the M answered rollouts, ties to the first
    r_i = s(a_i, a_c)                              (``threshold: null``)
    r_i = 1[s(a_i, a_c) ≥ θ]                       (``threshold: θ``; a vote for the medoid's ball)

``normalize: minmax`` rescales the answered rollouts' rewards to [0, 1] within the group,
(r_i − min) / (max − min) (all 1 when they are equal); ``none`` keeps them. The label is the
medoid's answer. ``similarity``: ``rouge_l`` (ROUGE-L F1 over words), ``jaccard`` (token sets),
``ast`` (Python AST structure; unparsable code falls back to ROUGE-L over code tokens), or
``auto``: ``ast`` for ``code`` groups, else ``rouge_l``. The medoid's own reward is always 1.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ttrl.core.data import Estimate, RolloutGroup
from ttrl.core.hookspecs import hookimpl
from ttrl.core.similarity import medoid, similarity_matrix

CODE_TASKS = frozenset({"code", "python"})


class ConsensusSimilarityOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    similarity: Literal["auto", "rouge_l", "jaccard", "ast"] = Field(
        "auto", description="Similarity measure; auto = ast for code groups, else rouge_l."
    )
    threshold: float | None = Field(
        None, ge=0.0, le=1.0, description="If set, reward 1 when sim(answer_i, consensus) >= threshold, else 0, instead of the similarity."
    )
    normalize: Literal["none", "minmax"] = Field(
        "none", description="minmax: rescale the group's rewards to [0, 1]; none: keep them."
    )
    deadline_seconds: float = Field(
        10.0, gt=0, description="Wall-clock limit for a group's pairwise similarities; later pairs count 0 and are reported."
    )


def resolve_similarity(option: str, task: str) -> str:
    if option != "auto":
        return option
    return "ast" if task in CODE_TASKS else "rouge_l"


def estimate_consensus_similarity(group: RolloutGroup, options: ConsensusSimilarityOptions) -> Estimate:
    """Reward each rollout by its similarity to the group's medoid answer (free-form text and code)."""
    answers = group.classes.answers
    n = len(answers)
    measure = resolve_similarity(options.similarity, group.task)
    matrix = similarity_matrix(answers, measure, deadline_seconds=options.deadline_seconds)
    center = medoid(matrix)
    diagnostics = dict(matrix.diagnostics)
    if center is None:
        diagnostics.update(filtered=True, reason="no rollout has an extractable answer")
        return Estimate([0.0] * n, None, diagnostics)
    similarities = [float(matrix.values[i, center]) if ok else 0.0 for i, ok in enumerate(matrix.answered)]
    if options.threshold is not None:
        rewards = [1.0 if ok and s >= options.threshold else 0.0 for s, ok in zip(similarities, matrix.answered)]
    else:
        rewards = list(similarities)
    if options.normalize == "minmax":
        answered = [r for r, ok in zip(rewards, matrix.answered) if ok]
        low, high = min(answered), max(answered)
        rewards = [
            (1.0 if high == low else (r - low) / (high - low)) if ok else 0.0 for r, ok in zip(rewards, matrix.answered)
        ]
    answered = [s for s, ok in zip(similarities, matrix.answered) if ok]
    diagnostics.update(
        medoid=center,
        num_answered=len(answered),
        mean_similarity_to_consensus=sum(answered) / len(answered),
    )
    if options.threshold is not None:
        diagnostics["majority_ratio"] = sum(rewards) / n
    return Estimate(rewards, answers[center], diagnostics)


@hookimpl
def register_estimators(register):
    register(
        "consensus_similarity",
        estimate_consensus_similarity,
        options=ConsensusSimilarityOptions,
        aliases=("similarity_consensus", "medoid"),
        requires=("answers",),
    )

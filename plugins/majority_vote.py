"""Majority vote (TTRL; Zuo et al., "TTRL: Test-Time Reinforcement Learning", arXiv:2504.16084, NeurIPS 2025).

The pseudo-label is the largest answer equivalence class ŷ = argmax_y n(y) over all N rollouts, and
the reward is r_i = 1[ŷ_i ≡ ŷ]. Rollouts without an extractable answer never vote and get 0.

Ties between classes of equal size go to the class whose first member comes first in the group (classes
are numbered by first appearance). This is what TTRL's reference code does (``Counter.most_common``
keeps insertion order), it is deterministic, and since rollouts are i.i.d. samples it is as fair as a
random draw. Tied groups say so in ``diagnostics["tied_classes"]``.

TTRL votes over 64 samples and trains on 32: ``n_train`` keeps the vote over all N rollouts and
names the rollouts to train on in ``Estimate.train_indices`` (rewards are still given for all N).

``srt`` (Self-Rewarded Training; Shafayat et al., "Can Large Reasoning Models Self-Train?",
arXiv:2505.21444, 2025) is this estimator with ``ratio_of="answered"``: its consistency threshold
(``min_majority_ratio``, 0 in the authors' scripts) divides the label's class by the rollouts that
have an answer, not by N (``tajwarfahim/srt``, ``verl/workers/reward_manager/self_learning.py``).
"""

from __future__ import annotations

import random
import zlib
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ttrl.core.data import Estimate, RolloutGroup
from ttrl.core.hookspecs import hookimpl


class MajorityVoteOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    n_train: int | None = Field(
        None, ge=1, description="Train on this many of the N voting rollouts (TTRL: vote 64, train 32); None trains on all."
    )
    train_selection: Literal["first", "random"] = Field(
        "first",
        description="How the n_train subset is chosen: the first n_train rollouts (TTRL's reference code; "
        "samples are i.i.d.) or a random subset drawn with `seed` and the group id.",
    )
    seed: int = Field(0, description="Seed for train_selection=random; the same seed and group id give the same subset.")
    min_majority_ratio: float = Field(
        0.0, ge=0.0, le=1.0,
        description="Flag groups whose label class holds less than this fraction of N rollouts (of the "
        "answered ones with ratio_of=answered): all rewards 0, no label, diagnostics['filtered'] = true, "
        "so trainers can drop them.",
    )
    ratio_of: Literal["all", "answered"] = Field(
        "all", description="What min_majority_ratio divides by: all N rollouts (TTRL), or only those with an answer (SRT)."
    )


def vote(sizes: list[int]) -> tuple[int | None, list[int]]:
    """The winning class (None when nobody answered) and the classes tied with it, from class sizes."""
    if not sizes:
        return None, []
    tied = [k for k, size in enumerate(sizes) if size == max(sizes)]
    return tied[0], tied


def train_subset(group_id: str, n: int, options: MajorityVoteOptions) -> list[int] | None:
    """Indices of the rollouts to train on, sorted; None means all of them."""
    if options.n_train is None or options.n_train >= n:
        return None
    if options.train_selection == "first":
        return list(range(options.n_train))
    # crc32, not hash(): str hashes are salted per process and the subset must be reproducible
    rng = random.Random(options.seed * 1_000_003 + zlib.crc32(group_id.encode("utf-8")))
    return sorted(rng.sample(range(n), options.n_train))


def estimate_majority_vote(group: RolloutGroup, options: MajorityVoteOptions) -> Estimate:
    """Reward 1 for rollouts that agree with the most frequent answer, 0 otherwise (TTRL)."""
    classes = group.classes
    n = len(group.rollouts)
    sizes = classes.sizes()
    winner, tied = vote(sizes)
    diagnostics = {"num_classes": len(sizes), "num_answered": sum(sizes)}
    train_indices = train_subset(group.id, n, options)
    if winner is None:
        diagnostics.update(majority_ratio=0.0, filtered=True, reason="no rollout has an extractable answer")
        return Estimate([0.0] * n, None, diagnostics, train_indices)
    diagnostics["majority_ratio"] = sizes[winner] / n
    ratio = sizes[winner] / (n if options.ratio_of == "all" else sum(sizes))
    if len(tied) > 1:
        diagnostics["tied_classes"] = [classes.representatives[k] for k in tied]
    if ratio < options.min_majority_ratio:
        of = "N" if options.ratio_of == "all" else "the answered rollouts"
        diagnostics.update(
            filtered=True,
            candidate_label=classes.representatives[winner],
            reason=f"the label's class is {ratio:.3f} of {of}, below min_majority_ratio {options.min_majority_ratio}",
        )
        return Estimate([0.0] * n, None, diagnostics, train_indices)
    rewards = [1.0 if k == winner else 0.0 for k in classes.class_ids]
    return Estimate(rewards, classes.representatives[winner], diagnostics, train_indices)


@hookimpl
def register_estimators(register):
    register(
        "majority_vote",
        estimate_majority_vote,
        options=MajorityVoteOptions,
        aliases=("ttrl", "majority"),
        requires=("answers",),
    )
    register(
        "srt",
        estimate_majority_vote,
        options=MajorityVoteOptions,
        defaults={"ratio_of": "answered"},
        aliases=("self_rewarded_training",),
        requires=("answers",),
        description="SRT: majority_vote whose consistency threshold counts only the answered rollouts.",
    )

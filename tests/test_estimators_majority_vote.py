"""Majority vote (TTRL): hand-worked groups, ties, the vote/train split and the minimum-majority filter."""

from __future__ import annotations

import pytest

from ttrl.core.config import ComponentSpec, RunConfig
from ttrl.core.data import Rollout, RolloutGroup
from ttrl.core.errors import OptionError
from ttrl.core.estimation import EstimationPipeline
from ttrl.core.metrics import evaluate_group, grade_group
from ttrl.core.plugins import load_plugins


@pytest.fixture(scope="module")
def registry():
    return load_plugins(entry_points=False, warn=False).registry


def vote(registry, answers, group_id="g", **options):
    """Run majority_vote through the real pipeline on rollouts whose texts box the given answers."""
    spec = ComponentSpec(name="majority_vote", options=options)
    pipeline = EstimationPipeline.from_config(RunConfig(), registry, spec)
    rollouts = [Rollout(text="I give up." if a is None else f"So the answer is $\\boxed{{{a}}}$.") for a in answers]
    group = RolloutGroup(id=group_id, prompt="?", rollouts=rollouts)
    pipeline.check_inputs(group)
    classes = pipeline.classify(group)
    return pipeline, group, classes, pipeline.run(group, classes)


def test_ttrl_lucky_hit_wrong_label_still_gives_mostly_right_rewards(registry):
    # TTRL paper, "lucky hit": answers 1,1,2,2,2,4,5,6 and the truth is 3. The vote picks 2 (wrong), yet
    # 5 of 8 rewards are right: every rollout is wrong, and the 5 that disagree with 2 correctly get 0.
    pipeline, group, classes, est = vote(registry, ["1", "1", "2", "2", "2", "4", "5", "6"])
    assert est.label == "2"
    assert est.rewards == [0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0]
    assert est.diagnostics["majority_ratio"] == 3 / 8
    assert est.diagnostics["num_classes"] == 5
    truth = grade_group(pipeline.engine, classes, "3", "math")
    score = evaluate_group(pipeline.engine, classes, truth, est.rewards, est.label)
    assert score.label_accuracy == 0.0
    assert score.reward_accuracy == 0.625
    assert score.majority_ratio == 3 / 8


def test_equivalent_answers_vote_together(registry):
    # \dfrac{1}{2} and \frac{1}{2} are one answer class, so together they outvote the two 3s.
    _, _, _, est = vote(registry, ["3", "\\dfrac{1}{2}", "\\frac{1}{2}", "3", "\\frac{1}{2}"])
    assert est.label == "\\frac{1}{2}"  # the class is named by its cleanest (normalised) member
    assert est.rewards == [0.0, 1.0, 1.0, 0.0, 1.0]


def test_rollouts_without_answer_never_win_and_get_zero(registry):
    # Three rollouts have no boxed answer; they are the largest "group" but do not vote.
    _, _, _, est = vote(registry, [None, "7", None, None])
    assert est.label == "7"
    assert est.rewards == [0.0, 1.0, 0.0, 0.0]
    assert est.diagnostics["majority_ratio"] == 1 / 4  # over all N rollouts, not only the answered ones
    assert est.diagnostics["num_answered"] == 1


def test_group_without_any_answer_is_flagged(registry):
    _, _, _, est = vote(registry, [None, None])
    assert est.label is None
    assert est.rewards == [0.0, 0.0]
    assert est.diagnostics["filtered"] is True
    assert "no rollout" in est.diagnostics["reason"]


def test_ties_go_to_the_answer_seen_first(registry):
    _, _, _, est = vote(registry, ["5", "3", "3", "5"])
    assert est.label == "5"
    assert est.rewards == [1.0, 0.0, 0.0, 1.0]
    assert est.diagnostics["tied_classes"] == ["5", "3"]
    _, _, _, swapped = vote(registry, ["3", "5", "5", "3"])
    assert swapped.label == "3"


def test_vote_over_all_train_on_the_first_n_train(registry):
    # TTRL: vote over 64 samples, train on 32. The vote still sees all 64 (here 30 of them say 4, so 4
    # wins although the first 32 alone would elect 9), and every rollout keeps its reward.
    answers = ["9"] * 20 + ["4"] * 30 + ["9"] * 8 + ["1"] * 6
    _, _, _, est = vote(registry, answers, n_train=32)
    assert est.label == "4"
    assert len(est.rewards) == 64
    assert est.train_indices == list(range(32))


def test_random_train_subset_is_reproducible_per_seed_and_group(registry):
    answers = ["2"] * 40 + ["3"] * 24
    options = dict(n_train=16, train_selection="random", seed=7)
    first = vote(registry, answers, group_id="a", **options)[3].train_indices
    again = vote(registry, answers, group_id="a", **options)[3].train_indices
    other_group = vote(registry, answers, group_id="b", **options)[3].train_indices
    other_seed = vote(registry, answers, group_id="a", **{**options, "seed": 8})[3].train_indices
    assert first == again
    assert len(first) == 16 and len(set(first)) == 16 and first == sorted(first)
    assert all(0 <= i < 64 for i in first)
    assert first != other_group and first != other_seed


def test_n_train_not_smaller_than_n_means_train_on_all(registry):
    assert vote(registry, ["1", "1"], n_train=2)[3].train_indices is None
    assert vote(registry, ["1", "1"])[3].train_indices is None


def test_weak_majority_is_flagged_for_filtering(registry):
    # 2 of 4 agree: ratio 0.5. Below min_majority_ratio=0.6 the group gets no label and zero rewards.
    _, _, _, est = vote(registry, ["1", "1", "2", "3"], min_majority_ratio=0.6)
    assert est.label is None
    assert est.rewards == [0.0] * 4
    assert est.diagnostics["filtered"] is True
    assert est.diagnostics["candidate_label"] == "1"
    assert "0.500" in est.diagnostics["reason"]
    # exactly at the threshold is not below it
    _, _, _, kept = vote(registry, ["1", "1", "2", "3"], min_majority_ratio=0.5)
    assert kept.label == "1" and "filtered" not in kept.diagnostics


@pytest.mark.parametrize(
    ("options", "fragment"),
    [({"n_train": 0}, "n_train"), ({"min_majority_ratio": 1.5}, "min_majority_ratio"), ({"train_selection": "last"}, "train_selection")],
)
def test_invalid_options_name_the_option(registry, options, fragment):
    with pytest.raises(OptionError, match=fragment) as info:
        vote(registry, ["1"], **options)
    assert "majority_vote" in str(info.value)

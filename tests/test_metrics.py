"""Reward-quality metrics with the names and definitions of docs/formats.md, on groups worked by hand."""

from __future__ import annotations

import pytest

from ttrl.core.answers import AnswerEngine
from ttrl.core.metrics import METRIC_NAMES, MetricsAccumulator, evaluate_group, grade_group, label_support, score_group
from ttrl.core.plugins import load_plugins


@pytest.fixture(scope="module")
def engine():
    return AnswerEngine(load_plugins(entry_points=False, warn=False).registry)


def test_metric_names_are_contracts():
    assert METRIC_NAMES == (
        "label_accuracy", "reward_accuracy", "majority_ratio", "pairwise_accuracy", "ground_truth_ratio", "pass_at_n",
    )


def test_ttrl_lucky_hit(engine):
    # Answers 1,1,2,2,2,4,5,6, truth 3; majority vote labels 2 and rewards its three rollouts.
    classes = engine.cluster(["1", "1", "2", "2", "2", "4", "5", "6"], "math")
    truth = grade_group(engine, classes, "3", "math")
    assert truth.correct == (False,) * 8
    score = evaluate_group(engine, classes, truth, [0, 0, 1, 1, 1, 0, 0, 0], "2")
    assert score.label_accuracy == 0.0
    assert score.reward_accuracy == 0.625  # the 5 rollouts outside the label's class correctly get 0
    assert score.majority_ratio == 3 / 8
    assert score.ground_truth_ratio == 0.0
    assert score.pass_at_n == 0.0
    assert score.pair_count == 0  # no correct rollout, so no (correct, incorrect) pair
    result = MetricsAccumulator(scores=[score], any_label=True).result()
    assert result["pairwise_accuracy"] is None


def test_grading_uses_answer_equivalence(engine):
    # \dfrac{1}{2} is the reference \frac{1}{2}: three of four rollouts are correct.
    classes = engine.cluster(["\\dfrac{1}{2}", "2", "\\frac{1}{2}", "\\frac{1}{2}"], "math")
    truth = grade_group(engine, classes, "\\frac{1}{2}", "math")
    assert truth.correct == (True, False, True, True)
    score = evaluate_group(engine, classes, truth, [1, 0, 1, 1], "\\dfrac{1}{2}")
    assert (score.label_accuracy, score.reward_accuracy, score.majority_ratio) == (1.0, 1.0, 0.75)
    assert (score.ground_truth_ratio, score.pass_at_n) == (0.75, 1.0)
    assert score.pair_wins == score.pair_count == 3


def test_label_support_finds_an_equivalent_representative(engine):
    classes = engine.cluster(["\\dfrac{1}{2}", "\\frac{1}{2}", "7"], "math")
    assert label_support(engine, classes, "\\frac{1}{2}", "math") == 2
    assert label_support(engine, classes, "9", "math") == 0
    assert label_support(engine, classes, None, "math") is None


def test_pairwise_accuracy_counts_ties_as_half():
    # correct rewards (0.9, 0.5) vs incorrect (0.5, 0.1): wins 0.9>0.5, 0.9>0.1, 0.5>0.1, tie 0.5=0.5 -> 3.5/4
    score = score_group([0.9, 0.5, 0.5, 0.1], [True, False, True, False], label=None, label_correct=None, label_size=None)
    assert (score.pair_wins, score.pair_count) == (3.5, 4)
    assert score.reward_accuracy is None  # rewards are not all 0/1
    assert score.label_accuracy is None and score.majority_ratio is None


def test_pairwise_accuracy_is_pooled_over_pairs_not_averaged_over_groups():
    a = score_group([0.9, 0.5, 0.5, 0.1], [True, False, True, False], label=None, label_correct=None, label_size=None)
    b = score_group([0.2, 0.8], [True, False], label=None, label_correct=None, label_size=None)  # 0 of 1 pair
    acc = MetricsAccumulator()
    acc.add(a)
    acc.add(b)
    result = acc.result()
    assert result["pairwise_accuracy"] == pytest.approx(3.5 / 5)  # not (0.875 + 0) / 2
    assert result["label_accuracy"] is None and result["majority_ratio"] is None  # a label-free estimator
    assert result["reward_accuracy"] is None
    assert result["ground_truth_ratio"] == pytest.approx((0.5 + 0.5) / 2)
    assert result["pass_at_n"] == 1.0


def test_dataset_averages_and_unlabelled_groups_score_zero():
    hit = score_group([1, 1, 0], [True, True, False], label="4", label_correct=True, label_size=2)
    miss = score_group([0, 0, 0], [False, False, True], label=None, label_correct=None, label_size=None)
    acc = MetricsAccumulator()
    acc.add(hit)
    acc.add(miss)
    result = acc.result()
    assert set(result) == set(METRIC_NAMES)
    assert result["label_accuracy"] == 0.5  # the group the estimator declined to label counts as a miss
    assert result["majority_ratio"] == pytest.approx((2 / 3 + 0) / 2)
    assert result["reward_accuracy"] == pytest.approx((1 + 2 / 3) / 2)
    assert result["ground_truth_ratio"] == pytest.approx((2 / 3 + 1 / 3) / 2)


def test_an_empty_group_does_not_null_reward_accuracy():
    full = score_group([1, 0], [True, False], label="1", label_correct=True, label_size=1)
    empty = score_group([], [], label=None, label_correct=None, label_size=None)
    assert empty.reward_accuracy is None and empty.pass_at_n == 0.0
    acc = MetricsAccumulator()
    acc.add(full)
    acc.add(empty)
    assert acc.result()["reward_accuracy"] == 1.0


def test_no_groups_gives_all_null():
    assert MetricsAccumulator().result() == dict.fromkeys(METRIC_NAMES)

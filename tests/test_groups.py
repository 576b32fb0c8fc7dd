"""The trainer-agnostic group layer: rewards, train subset, failure policy, validation, metrics."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from ttrl.core.config import ComponentSpec, GroupSettings, RunConfig
from ttrl.core.data import Rollout, RolloutGroup
from ttrl.core.errors import EstimatorFailure, GroupLayoutError, OptionError, UnscoreableGroup
from ttrl.core.estimation import EstimationPipeline
from ttrl.core.groups import (
    STEP_METRIC_NAMES,
    GroupEstimator,
    Response,
    bind_train_size,
    build_rollout,
    consecutive_groups,
)

from bad_groups import BAD_GROUPS, TIME_LIMIT, TRIGGER, bad_and_good


@pytest.fixture(scope="module")
def registry(misbehaving_registry):
    return misbehaving_registry


def layer(registry, name="majority_vote", *, n_votes=4, n_train=None, on_failure="skip", timeout=60.0, **options):
    config = RunConfig(
        estimator=ComponentSpec(name=name, options=options),
        answers={"task": "number"},
        groups=GroupSettings(on_failure=on_failure, estimator_timeout_seconds=timeout),
    )
    return GroupEstimator.from_config(config, registry, n_votes=n_votes, n_train=n_train, section="trl")


def texts(*values: str) -> list[Response]:
    return [Response(text=v) for v in values]


def test_majority_vote_over_four_trains_on_two_with_metrics_over_all_and_over_the_trained(registry):
    groups = layer(registry, n_train=2)
    # 7 wins 3 to 1 and is right; the trained pair is the first two responses
    first = groups.estimate("a", "q", texts("6", "7", "7", "7"), reference="7")
    # 5 wins 2 to 1 and is wrong; one response has no answer
    second = groups.estimate("b", "q", texts("5", "4", "none", "5"), reference="4")

    assert (first.rewards, first.train_indices, first.label) == ([0.0, 1.0, 1.0, 1.0], [0, 1], "7")
    assert first.trainer_rewards() == [0.0, 1.0, None, None]
    assert (second.rewards, second.label, second.status) == ([1.0, 0.0, 0.0, 1.0], "5", "scored")
    m = groups.step_metrics()
    assert m["label_accuracy"] == 0.5
    assert m["reward_accuracy"] == pytest.approx((4 / 4 + 1 / 4) / 2)
    assert m["ground_truth_ratio"] == pytest.approx((3 / 4 + 1 / 4) / 2)
    assert m["pass_at_n"] == 1.0
    # over the trained pairs: (6 -> 0, right), (7 -> 1, right); (5 -> 1, wrong), (4 -> 0, wrong)
    assert m["trained_reward_accuracy"] == pytest.approx((1.0 + 0.0) / 2)
    assert m["trained_ground_truth_ratio"] == pytest.approx((1 / 2 + 1 / 2) / 2)
    assert m["trained_pass_at_n"] == 1.0
    assert m["reward_mean"] == pytest.approx(5 / 8)
    assert m["trained_reward_mean"] == pytest.approx(2 / 4)
    assert (m["groups"], m["scored_groups"], m["filtered_groups"], m["failed_groups"]) == (2, 2, 0, 0)
    # label-free: majority 3/4 and 2/4; classes {6, 7} and {5, 4} + one without an answer
    assert m["majority_ratio"] == pytest.approx((3 / 4 + 2 / 4) / 2)
    assert m["distinct_answers"] == 2.0
    assert m["no_answer_ratio"] == pytest.approx((0 + 1 / 4) / 2)
    h1 = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    h2 = -(0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25))
    assert m["answer_entropy"] == pytest.approx((h1 + h2) / 2)
    assert set(m) <= set(STEP_METRIC_NAMES)
    assert groups.step_metrics()["groups"] == 0  # reset after each step


def test_without_references_only_the_label_free_metrics_are_reported(registry):
    groups = layer(registry)
    groups.estimate("a", "q", texts("1", "1", "2", "2"))
    m = groups.step_metrics()
    assert "label_accuracy" not in m and "trained_reward_accuracy" not in m
    assert m["majority_ratio"] == 0.5 and m["reward_mean"] == 0.5


def test_response_length_is_the_mean_token_count_when_the_trainer_knows_it(registry):
    groups = layer(registry, n_votes=2)
    groups.estimate("a", "q", [Response("1", num_tokens=10), Response("1", num_tokens=30)])
    assert groups.step_metrics()["response_tokens"] == 20.0


def test_a_filtered_group_is_never_trained_on_and_is_counted(registry):
    groups = layer(registry, min_majority_ratio=0.6)
    result = groups.estimate("weak", "q", texts("1", "2", "3", "1"), reference="1")
    assert result.status == "filtered" and result.train_indices == []
    assert result.trainer_rewards() == [None] * 4
    assert "min_majority_ratio" in result.reason
    m = groups.step_metrics()
    assert (m["filtered_groups"], m["scored_groups"]) == (1, 0)
    assert "reward_mean" not in m  # nothing was trained on


@pytest.mark.parametrize("case", sorted(BAD_GROUPS))
def test_a_group_the_estimator_cannot_score_gives_no_learning_signal_and_the_run_goes_on(registry, case):
    (name, options), _responses, kind, reason = BAD_GROUPS[case]
    bad_responses, good_responses = bad_and_good(case)
    groups = layer(registry, name, n_votes=2, timeout=TIME_LIMIT, **options)
    bad = groups.estimate("bad", TRIGGER, bad_responses, reference="1")
    good = groups.estimate("good", "fine", good_responses)

    assert bad.status == "failed" and bad.failure_kind == kind, bad.reason
    assert reason in bad.reason
    assert bad.train_indices == [] and bad.trainer_rewards() == [None, None]
    assert all(math.isnan(r) for r in bad.rewards)
    assert good.status == "scored"
    m = groups.step_metrics()
    assert (m["failed_groups"], m["scored_groups"]) == (1, 1)
    if name == "misbehaving":
        assert "plugin 'misbehaving'" in bad.reason


@pytest.mark.parametrize("case", ["nan_statistics", "exception", "time_limit"])
def test_on_failure_stop_ends_the_run_with_the_reason(registry, case):
    (name, options), _responses, _kind, reason = BAD_GROUPS[case]
    groups = layer(registry, name, n_votes=2, on_failure="stop", timeout=TIME_LIMIT, **options)
    with pytest.raises(UnscoreableGroup) as excinfo:
        groups.estimate("bad", TRIGGER, bad_and_good(case)[0])
    assert "'bad'" in str(excinfo.value) and reason in str(excinfo.value) and "on_failure" in str(excinfo.value)


def test_the_time_limit_stops_a_hanging_plugin_promptly(registry):
    groups = layer(registry, "misbehaving", n_votes=2, timeout=0.2, how="hang", hang_seconds=20)
    started = time.monotonic()
    result = groups.estimate("bad", "MISBEHAVE", texts("1", "2"))
    assert time.monotonic() - started < 2.0
    assert result.failure_kind == "timeout"


def test_keyboard_interrupt_is_not_swallowed(registry):
    pipeline = layer(registry).pipeline

    def interrupted(group, options):
        raise KeyboardInterrupt

    pipeline.estimator = pipeline.estimator.__class__(
        info=pipeline.estimator.info.__class__(name="stop_me", function=interrupted, plugin="test"),
        options=None, label="stop_me",
    )
    with pytest.raises(KeyboardInterrupt):
        GroupEstimator(pipeline, n_votes=2).estimate("g", "q", texts("1", "2"))


def test_estimator_output_is_validated_in_the_pipeline_for_every_caller(registry):
    config = RunConfig(estimator=ComponentSpec(name="misbehaving", options={"how": "string_reward"}))
    pipeline = EstimationPipeline.from_config(config, registry)
    with pytest.raises(EstimatorFailure) as excinfo:
        pipeline.run(RolloutGroup(id="g1", prompt="MISBEHAVE", rollouts=[Rollout("1"), Rollout("2")]))
    assert excinfo.value.plugin == "misbehaving" and excinfo.value.kind == "bad_output"
    assert str(excinfo.value).startswith("estimator 'misbehaving' (plugin 'misbehaving') failed on group 'g1'")


def test_an_estimator_choosing_a_train_subset_must_choose_n_train(registry):
    groups = layer(registry, "majority_vote", n_votes=4, n_train=2)
    groups.pipeline.estimator.options.n_train = 3  # as if the estimator ignored the bound option
    result = groups.estimate("g", "q", texts("1", "1", "1", "2"))
    assert result.failure_kind == "bad_output" and "n_train is 2" in result.reason


def test_token_arrays_become_rollout_fields_and_means_by_the_data_models_field_list():
    from ttrl.core.data import TOKEN_FIELDS

    arrays = {name: np.arange(3, dtype=float) + i for i, name in enumerate(TOKEN_FIELDS)}
    rollout = build_rollout(Response("x", token_stats=arrays))
    for i, (name, mean_name) in enumerate(TOKEN_FIELDS.items()):
        assert getattr(rollout, name).tolist() == [i, i + 1.0, i + 2.0]
        assert rollout.stats[mean_name] == pytest.approx(i + 1.0)
    assert rollout.stats["num_tokens"] == 3.0
    empty = build_rollout(Response("", token_stats={"token_entropy": np.zeros(0)}))
    assert empty.stats == {"num_tokens": 0.0}
    with pytest.raises(ValueError, match="unknown token statistics"):
        build_rollout(Response("x", token_stats={"token_mystery": np.zeros(2)}))


def test_consecutive_groups_refuses_cut_or_mixed_groups():
    assert consecutive_groups(["a", "a", "b", "b"], 2) == [range(0, 2), range(2, 4)]
    with pytest.raises(GroupLayoutError, match="not a multiple"):
        consecutive_groups(["a", "a", "b"], 2)
    with pytest.raises(GroupLayoutError, match="mixes prompts"):
        consecutive_groups(["a", "b", "a", "b"], 2)


def test_bind_train_size_hands_n_train_to_the_estimator_and_refuses_contradictions(registry):
    config = RunConfig(estimator=ComponentSpec(name="majority_vote"))
    bound = bind_train_size(config, registry, n_votes=64, n_train=32, section="verl")
    assert bound.estimator.options == {"n_train": 32}
    with pytest.raises(OptionError, match=r"verl.n_train \(65\) must not exceed verl.n_votes \(64\)"):
        bind_train_size(config, registry, n_votes=64, n_train=65, section="verl")
    clash = RunConfig(estimator=ComponentSpec(name="majority_vote", options={"n_train": 16}))
    with pytest.raises(OptionError, match="estimator.options.n_train is 16 but verl.n_train is 32"):
        bind_train_size(clash, registry, n_votes=64, n_train=32, section="verl")
    # estimators without an n_train option are left alone; the layer trains on the first n_train
    entropy = RunConfig(estimator=ComponentSpec(name="entropy"))
    assert bind_train_size(entropy, registry, n_votes=4, n_train=2, section="verl") == entropy


def test_a_group_of_the_wrong_size_is_a_layout_error(registry):
    with pytest.raises(GroupLayoutError, match="3 responses, but 4 vote"):
        layer(registry).estimate("g", "q", texts("1", "2", "3"))


def test_without_a_trainer_train_size_the_estimators_own_subset_is_trained_on(registry):
    config = RunConfig(estimator=ComponentSpec(name="majority_vote", options={"n_train": 3}), answers={"task": "number"})
    groups = GroupEstimator.from_config(config, registry, n_votes=4, n_train=None, section="trl")
    result = groups.estimate("g", "q", texts("1", "1", "2", "1"))
    assert result.train_indices == [0, 1, 2] and result.trainer_rewards() == [1.0, 1.0, 0.0, None]


def test_a_flat_batch_is_estimated_group_by_group_in_batch_order(registry):
    groups = layer(registry, n_votes=2)
    results = groups.estimate_batch(
        ["a", "a", "b", "b"], ["qa", "qa", "qb", "qb"], texts("1", "1", "2", "3"), references=["1", "1", "3", "3"]
    )
    assert [(r.group_id, r.label, r.rewards) for r in results] == [("a", "1", [1.0, 1.0]), ("b", "2", [1.0, 0.0])]
    assert groups.step_metrics()["label_accuracy"] == 0.5
    with pytest.raises(GroupLayoutError, match="mixes prompts"):
        groups.estimate_batch(["x", "y"], ["qa", "qb"], texts("1", "2"), keys=["qa", "qb"])

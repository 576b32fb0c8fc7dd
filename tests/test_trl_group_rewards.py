"""Group rewards for a TRL batch: consecutive generations per prompt, one pipeline call per group."""

from __future__ import annotations

import math

import pytest

from ttrl.adapters.trl.group_rewards import BatchItem, GroupLayoutError, estimate_batch, group_summary, split_groups
from ttrl.core.config import ComponentSpec, RunConfig
from ttrl.core.data import Rollout
from ttrl.core.estimation import EstimationPipeline
from ttrl.core.plugins import load_plugins


def pipeline(name: str = "majority_vote", **options) -> EstimationPipeline:
    registry = load_plugins(entry_points=False).registry
    config = RunConfig(estimator=ComponentSpec(name=name, options=options), answers={"task": "number"})
    return EstimationPipeline.from_config(config, registry)


def batch(groups: dict[str, tuple[str, list[str]]]) -> list[BatchItem]:
    """Items laid out as TRL lays them out: each prompt's completions next to each other."""
    return [
        BatchItem(group_id=gid, prompt=f"question {gid}", rollout=Rollout(text=text), task="math", reference=reference)
        for gid, (reference, texts) in groups.items()
        for text in texts
    ]


def test_each_block_of_num_generations_is_one_group_and_rewards_come_back_in_batch_order():
    items = batch(
        {
            # 7 wins 3 to 1: the majority is right
            "a": ("7", ["it is 7", "7", "maybe 6", "so 7"]),
            # 5 wins 2 to 1, one rollout has no number: the majority is wrong
            "b": ("4", ["5", "no idea", "4", "5"]),
        }
    )
    result = estimate_batch(pipeline(), items, num_generations=4)

    assert result.estimator_rewards == [1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0]
    assert result.trainer_rewards == result.estimator_rewards
    assert result.labels == ["7", "5"]
    # label right in one group of two; rewards match the truth in 4/4 and 1/4 rollouts
    assert result.metrics["label_accuracy"] == 0.5
    assert result.metrics["reward_accuracy"] == pytest.approx((4 / 4 + 1 / 4) / 2)
    assert result.metrics["majority_ratio"] == pytest.approx((3 / 4 + 2 / 4) / 2)


def test_the_estimator_votes_over_all_generations_and_the_rest_get_no_trainer_reward():
    items = batch({"a": ("7", ["6", "7", "7", "7"])})
    result = estimate_batch(pipeline(n_train=2), items, num_generations=4)

    # the vote counts all four (7 wins 3 to 1) ...
    assert result.labels == ["7"]
    assert result.estimator_rewards == [0.0, 1.0, 1.0, 1.0]
    # ... but only the first two are trained on: TRL gives None rewards advantage 0 and leaves them out of the baseline
    assert result.trainer_rewards == [0.0, 1.0, None, None]


def test_an_estimator_without_a_train_split_trains_on_the_first_n_train():
    items = [
        BatchItem("a", "q", Rollout(text=str(i), stats={"mean_self_certainty": 1.0 + i}), "math", None) for i in range(4)
    ]
    result = estimate_batch(pipeline("self_certainty"), items, num_generations=4, n_train=3)
    assert result.estimator_rewards == [1.0, 2.0, 3.0, 4.0]
    assert result.trainer_rewards == [1.0, 2.0, 3.0, None]
    # no reference: no metrics
    assert result.metrics == {}


def test_a_group_the_estimator_cannot_score_gets_no_reward_and_the_others_still_do():
    # an empty completion has no tokens, so no mean self-certainty
    broken = [Rollout(text="", stats={"mean_self_certainty": math.nan})] + [
        Rollout(text="7", stats={"mean_self_certainty": 2.0}) for _ in range(2)
    ]
    fine = [Rollout(text="7", stats={"mean_self_certainty": 1.5}) for _ in range(3)]
    items = [BatchItem("a", "q", r, "math") for r in broken] + [BatchItem("b", "q", r, "math") for r in fine]

    result = estimate_batch(pipeline("self_certainty"), items, num_generations=3)

    assert result.trainer_rewards == [None, None, None, 1.5, 1.5, 1.5]
    assert len(result.failures) == 1 and "Group 'a', rollout 0: stats.mean_self_certainty is nan" in result.failures[0]
    assert group_summary(result.groups[0])["rewards"] == [None, None, None]


def test_the_reference_never_reaches_the_estimator():
    seen = []

    def spy(group, options):
        seen.append(group)
        from ttrl.core.data import Estimate

        return Estimate([0.0] * len(group.rollouts))

    registry = load_plugins(entry_points=False).registry
    registry.estimator_callback("test")("spy", spy, requires=("answers",))
    engine_config = RunConfig(estimator=ComponentSpec(name="spy"), answers={"task": "number"})
    estimate_batch(EstimationPipeline.from_config(engine_config, registry), batch({"a": ("7", ["7", "8"])}), 2)

    (group,) = seen
    assert not hasattr(group, "reference")
    assert "7" not in repr(group.meta) and group.prompt == "question a"


def test_a_batch_that_mixes_prompts_inside_a_block_is_refused():
    items = batch({"a": ("1", ["1", "1", "1"]), "b": ("2", ["2", "2", "2"])})
    with pytest.raises(GroupLayoutError, match="mixes prompts"):
        split_groups(items, 2)
    with pytest.raises(GroupLayoutError, match="not a multiple of num_generations=4"):
        split_groups(items, 4)

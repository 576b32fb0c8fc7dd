"""TRL's reward function on a GRPO batch: consecutive generations per prompt, one group-layer call each.

No model is needed: majority_vote reads answers only. The reward function is the one GRPOTrainer calls
(``EstimatorReward``), with the keyword arguments TRL passes.
"""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("accelerate")

from ttrl.adapters.trl.binding import EstimatorReward  # noqa: E402
from ttrl.core.config import ComponentSpec, RunConfig  # noqa: E402
from ttrl.core.data import Estimate  # noqa: E402
from ttrl.core.errors import GroupLayoutError  # noqa: E402
from ttrl.core.groups import GroupEstimator  # noqa: E402
from ttrl.core.hookspecs import hookimpl  # noqa: E402
from ttrl.core.plugins import load_plugins  # noqa: E402


def reward_function(name="majority_vote", *, n_votes=4, n_train=None, registry=None, **options) -> EstimatorReward:
    registry = registry or load_plugins(entry_points=False).registry
    config = RunConfig(estimator=ComponentSpec(name=name, options=options), answers={"task": "number"})
    groups = GroupEstimator.from_config(
        config, registry, n_votes=n_votes, n_train=n_train, section="trl", votes_key="num_generations"
    )
    return EstimatorReward(groups, temperature=1.0)


def call(reward: EstimatorReward, groups: dict[str, tuple[str | None, list[str]]], logged: dict | None = None):
    """Call the reward function as GRPOTrainer does: each prompt's completions next to each other."""
    rows = [(gid, reference, text) for gid, (reference, texts) in groups.items() for text in texts]
    return reward(
        prompts=[f"question {g}" for g, _, _ in rows],
        completions=[t for _, _, t in rows],
        completion_ids=[[1, 2]] * len(rows),
        group_id=[g for g, _, _ in rows],
        task=["math"] * len(rows),
        reference=[r for _, r, _ in rows],
        log_metric=None if logged is None else (lambda name, value: logged.__setitem__(name, value)),
    )


def test_each_block_of_num_generations_is_one_group_and_rewards_come_back_in_batch_order():
    logged: dict[str, float] = {}
    reward = reward_function()
    rewards = call(
        reward,
        {
            "a": ("7", ["it is 7", "7", "maybe 6", "so 7"]),  # 7 wins 3 to 1: the majority is right
            "b": ("4", ["5", "no idea", "4", "5"]),  # 5 wins 2 to 1: wrong
        },
        logged,
    )
    assert rewards == [1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0]
    assert [g["label"] for g in reward.history[-1].groups] == ["7", "5"]
    assert logged["ttrl/label_accuracy"] == 0.5
    assert logged["ttrl/reward_accuracy"] == pytest.approx((4 / 4 + 1 / 4) / 2)
    assert logged["ttrl/majority_ratio"] == pytest.approx((3 / 4 + 2 / 4) / 2)
    assert logged["ttrl/response_tokens"] == 2.0  # len(completion_ids)


def test_the_estimator_votes_over_all_generations_and_the_rest_get_no_trainer_reward():
    reward = reward_function(n_train=2)
    rewards = call(reward, {"a": ("7", ["6", "7", "7", "7"])})
    # the vote counts all four (7 wins 3 to 1) but only the first two are trained on
    assert reward.history[-1].estimator_rewards == [0.0, 1.0, 1.0, 1.0]
    assert rewards == [0.0, 1.0, None, None]


def test_a_filtered_group_gets_no_trainer_reward_at_all():
    logged: dict[str, float] = {}
    rewards = call(reward_function(min_majority_ratio=0.6), {"a": ("1", ["1", "2", "3", "1"])}, logged)
    assert rewards == [None] * 4
    assert logged["ttrl/filtered_groups"] == 1.0


class Spy:
    """A plugin whose estimator records what it was given."""

    def __init__(self):
        self.seen = []

    @hookimpl
    def register_estimators(self, register):
        def spy(group, options):
            self.seen.append(group)
            return Estimate([0.0] * len(group.rollouts))

        register("spy", spy, requires=("answers",))


def test_the_reference_never_reaches_the_estimator():
    spy = Spy()
    registry = load_plugins(entry_points=False, extra=[("spy", spy)]).registry
    call(reward_function("spy", n_votes=2, registry=registry), {"a": ("7", ["7", "8"])})
    (group,) = spy.seen
    assert not hasattr(group, "reference")
    assert "7" not in repr(group.meta) and group.prompt == "question a"


def test_a_batch_that_mixes_prompts_inside_a_block_is_refused():
    reward = reward_function(n_votes=2)
    with pytest.raises(GroupLayoutError, match="mixes prompts"):
        reward(
            prompts=["qa", "qb", "qa", "qb"], completions=["1"] * 4, completion_ids=[[1]] * 4,
            group_id=["a", "b", "a", "b"], task=["math"] * 4,
        )

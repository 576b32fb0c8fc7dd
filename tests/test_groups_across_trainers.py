"""The same bad group, handed to the OpenRLHF adapter and to the TRL adapter, is handled the same way.

Each case of ``bad_groups.BAD_GROUPS`` (NaN statistics, an empty response, an estimator exception or
``SystemExit``, malformed output, the time limit) goes through each adapter's own code: TRL's
``EstimatorReward`` (the GRPOTrainer reward function; only the policy forward that would compute the
token arrays is replaced by the arrays of the case) and OpenRLHF's ``select_training_samples`` (the
framework-free half of the patched ``make_experience_batch``). Both must give the bad group no
learning signal, keep training the good one, count one failed group under the same metric name, and
give the same reason. With ``on_failure: stop`` both stop with the same error.
"""

from __future__ import annotations


import pytest

pytest.importorskip("torch")
pytest.importorskip("accelerate")

from bad_groups import BAD_GROUPS, TIME_LIMIT, TRIGGER, bad_and_good  # noqa: E402

from ttrl.adapters.openrlhf.binding import select_training_samples  # noqa: E402
from ttrl.adapters.trl.binding import EstimatorReward  # noqa: E402
from ttrl.core.config import ComponentSpec, GroupSettings, RunConfig  # noqa: E402
from ttrl.core.errors import UnscoreableGroup  # noqa: E402
from ttrl.core.groups import GroupEstimator  # noqa: E402


@pytest.fixture(scope="module")
def registry(misbehaving_registry):
    return misbehaving_registry


def layer(registry, case: str, on_failure: str = "skip") -> GroupEstimator:
    (name, options), *_ = BAD_GROUPS[case]
    config = RunConfig(
        estimator=ComponentSpec(name=name, options=options),
        answers={"task": "number"},
        groups=GroupSettings(on_failure=on_failure, estimator_timeout_seconds=TIME_LIMIT),
    )
    return GroupEstimator.from_config(config, registry, n_votes=2, n_train=None, section="trainer")


def through_trl(registry, case: str, on_failure: str = "skip"):
    bad, good = bad_and_good(case)
    reward = EstimatorReward(layer(registry, case, on_failure), temperature=1.0)
    responses = bad + good
    # the policy forward is the only piece replaced: it would compute exactly these arrays
    reward._token_arrays = lambda prompts, ids: [r.token_stats for r in responses]
    logged: dict[str, float] = {}
    rewards = reward(
        prompts=[TRIGGER, TRIGGER, "fine", "fine"],
        completions=[r.text for r in responses],
        completion_ids=[[7] * r.num_tokens for r in responses],
        group_id=["bad", "bad", "good", "good"],
        task=["number"] * 4,
        reference=["1"] * 4,
        log_metric=lambda name, value: logged.__setitem__(name, value),
    )
    return rewards, logged, reward.history[-1].groups


def through_openrlhf(registry, case: str, on_failure: str = "skip"):
    bad, good = bad_and_good(case)
    return select_training_samples(
        layer(registry, case, on_failure),
        ["bad", "bad", "good", "good"],
        [TRIGGER, TRIGGER, "fine", "fine"],
        ["1"] * 4,
        bad + good,
    )


@pytest.mark.parametrize("case", sorted(BAD_GROUPS))
def test_the_same_bad_group_gives_no_learning_signal_in_openrlhf_and_in_trl(registry, case):
    _, _, kind, reason = BAD_GROUPS[case]
    trl_rewards, trl_logged, trl_groups = through_trl(registry, case)
    selection = through_openrlhf(registry, case)

    # TRL: None rewards (advantage 0, left out of the baseline) for the bad group only
    assert trl_rewards[:2] == [None, None] and None not in trl_rewards[2:]
    # OpenRLHF: the bad group's samples stay in the batch with reward 0 and their advantage zeroed
    assert selection.kept == [0, 1, 2, 3]
    assert selection.trained == [False, False, True, True] and selection.rewards[:2] == [0.0, 0.0]
    # the same counts, under the same names, in both trainers' logs
    assert trl_logged["ttrl/failed_groups"] == selection.metrics["failed_groups"] == 1.0
    assert trl_logged["ttrl/scored_groups"] == selection.metrics["scored_groups"] == 1.0
    assert {k.removeprefix("ttrl/") for k in trl_logged} == set(selection.metrics)
    # and the same reason
    (bad_openrlhf,) = [r for r in selection.results if r.status == "failed"]
    assert bad_openrlhf.failure_kind == kind and reason in bad_openrlhf.reason
    assert trl_groups[0]["status"] == "failed" and trl_groups[0]["reason"] == bad_openrlhf.reason


@pytest.mark.parametrize("case", ["nan_statistics", "system_exit", "time_limit"])
def test_on_failure_stop_stops_both_trainers_with_the_same_error(registry, case):
    with pytest.raises(UnscoreableGroup) as trl_error:
        through_trl(registry, case, on_failure="stop")
    with pytest.raises(UnscoreableGroup) as openrlhf_error:
        through_openrlhf(registry, case, on_failure="stop")
    assert str(trl_error.value) == str(openrlhf_error.value)

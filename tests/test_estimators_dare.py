"""DARE: a group worked by hand, with pruning and the exploration bonus, and its normalisation options."""

from __future__ import annotations

import pytest

from ttrl.core.config import ComponentSpec, RunConfig
from ttrl.core.data import Rollout, RolloutGroup
from ttrl.core.errors import EstimatorInputError
from ttrl.core.estimation import EstimationPipeline
from ttrl.core.plugins import load_plugins


@pytest.fixture(scope="module")
def registry():
    return load_plugins(entry_points=False, warn=False).registry


def dare(registry, rows, meta=None, **options):
    """Run DARE through the real pipeline; ``rows`` are (answer or None, mean token entropy) pairs."""
    pipeline = EstimationPipeline.from_config(RunConfig(), registry, ComponentSpec(name="dare", options=options))
    rollouts = [
        Rollout(text=f"\\boxed{{{a}}}" if a is not None else "no idea", stats={"mean_entropy": h}) for a, h in rows
    ]
    group = RolloutGroup(id="dare-1", prompt="?", rollouts=rollouts, meta=meta or {})
    pipeline.check_inputs(group)
    return pipeline.run(group)


# M = 8 rollouts, four answers:
#   A: n=4, entropies 0.2 0.3 0.25 0.25 -> u=0.25, n/u = 16
#   B: n=2, entropies 0.4 0.6           -> u=0.5,  n/u = 4
#   C: n=1, entropy 0.25                -> u=0.25, n/u = 4
#   D: n=1, entropy 2.0                 -> u=2.0,  n/u = 0.5
# p̂ = (16, 4, 4, 0.5) / 24.5 = (0.6531, 0.1633, 0.1633, 0.0204); tau=0.05 prunes D.
# Renormalised over A, B, C: (16, 4, 4) / 24 = (2/3, 1/6, 1/6).
# Bonus (1 - n/M)(1 - u): A 0.5*0.75 = 0.375, B 0.75*0.5 = 0.375, C 0.875*0.75 = 0.65625.
# alpha=0.5: r_A = 2/3 + 0.1875 = 0.854167, r_B = 1/6 + 0.1875 = 0.354167, r_C = 1/6 + 0.328125 = 0.494792.
HAND_WORKED = [("A", 0.2), ("A", 0.3), ("B", 0.4), ("A", 0.25), ("C", 0.25), ("B", 0.6), ("D", 2.0), ("A", 0.25)]
R_A, R_B, R_C = 2 / 3 + 0.1875, 1 / 6 + 0.1875, 1 / 6 + 0.328125


def test_hand_worked_group_with_pruning_and_bonus(registry):
    est = dare(registry, HAND_WORKED, alpha=0.5, tau=0.05)
    assert est.label == "A"
    assert est.rewards == pytest.approx([R_A, R_A, R_B, R_A, R_C, R_B, 0.0, R_A], rel=1e-5)
    assert est.diagnostics["answers"] == ["A", "B", "C", "D"]
    assert est.diagnostics["counts"] == [4, 2, 1, 1]
    assert est.diagnostics["uncertainty"] == pytest.approx([0.25, 0.5, 0.25, 2.0])
    assert est.diagnostics["p_hat"] == pytest.approx([16 / 24.5, 4 / 24.5, 4 / 24.5, 0.5 / 24.5], rel=1e-5)
    assert est.diagnostics["pruned"] == ["D"]


def test_bonus_favours_the_rare_confident_answer(registry):
    # B and C have the same p̂ (1/6), but C is rarer and more certain: the bonus ranks it above B.
    est = dare(registry, HAND_WORKED)
    assert est.rewards[4] > est.rewards[2]
    # without the bonus the two are equal, and the rewards are just the pruned distribution
    plain = dare(registry, HAND_WORKED, alpha=0.0)
    assert plain.rewards == pytest.approx([2 / 3, 2 / 3, 1 / 6, 2 / 3, 1 / 6, 1 / 6, 0.0, 2 / 3], rel=1e-5)


def test_no_pruning_keeps_the_rare_uncertain_answer(registry):
    # tau=0: D keeps p̂ = 0.5/24.5; its bonus (1 - 1/8)(1 - min(2.0, 1)) is 0 under the default clamp.
    est = dare(registry, HAND_WORKED, tau=0.0)
    assert est.diagnostics["pruned"] == []
    assert est.rewards[6] == pytest.approx(0.5 / 24.5, rel=1e-5)
    assert est.rewards[0] == pytest.approx(16 / 24.5 + 0.1875, rel=1e-5)


def test_uncertainty_normalization_none_turns_the_bonus_into_a_penalty(registry):
    # The literal formula: D's bonus is (1 - 1/8)(1 - 2.0) = -0.875, so r_D = 0.0204 - 0.4375 < 0.
    est = dare(registry, HAND_WORKED, tau=0.0, uncertainty_normalization="none")
    assert est.rewards[6] == pytest.approx(0.5 / 24.5 - 0.4375, rel=1e-5)


def test_log_vocab_normalization_uses_vocab_size_from_meta_or_option(registry):
    # |V| = 10000, log|V| = 9.2103. C: u~ = 0.25/9.2103 = 0.027144,
    # bonus = 0.875 * (1 - 0.027144) = 0.851249; r_C = 1/6 + 0.5 * 0.851249 = 0.592291.
    from_meta = dare(registry, HAND_WORKED, meta={"vocab_size": 10000}, uncertainty_normalization="log_vocab")
    from_option = dare(registry, HAND_WORKED, uncertainty_normalization="log_vocab", vocab_size=10000)
    assert from_meta.rewards[4] == pytest.approx(0.592291, rel=1e-5)
    assert from_option.rewards == from_meta.rewards


def test_log_vocab_without_vocab_size_says_how_to_give_it(registry):
    with pytest.raises(EstimatorInputError, match="vocab_size") as info:
        dare(registry, HAND_WORKED, uncertainty_normalization="log_vocab")
    assert "dare-1" in str(info.value)


def test_rollouts_without_answer_get_zero_and_do_not_count(registry):
    # M counts every rollout (4), answers only the answered ones: X n=2 u=0.5, Y n=1 u=0.5.
    # p̂ = (2/3, 1/3); bonus X = (1 - 2/4)(0.5) = 0.25, Y = (1 - 1/4)(0.5) = 0.375.
    est = dare(registry, [("X", 0.5), (None, 0.1), ("Y", 0.5), ("X", 0.5)], alpha=1.0, tau=0.0)
    assert est.rewards == pytest.approx([2 / 3 + 0.25, 0.0, 1 / 3 + 0.375, 2 / 3 + 0.25], rel=1e-5)


def test_everything_pruned_gives_zero_rewards_and_no_label(registry):
    est = dare(registry, [("X", 0.5), ("Y", 0.5)], tau=0.9)
    assert est.label is None
    assert est.rewards == [0.0, 0.0]
    assert "tau" in est.diagnostics["reason"]


def test_missing_entropy_names_field_estimator_and_the_fix(registry):
    pipeline = EstimationPipeline.from_config(RunConfig(), registry, ComponentSpec(name="dare"))
    group = RolloutGroup(id="q7", prompt="?", rollouts=[Rollout(text="\\boxed{1}")])
    with pytest.raises(EstimatorInputError) as info:
        pipeline.check_inputs(group)
    message = str(info.value)
    for fragment in ("stats.mean_entropy", "'dare'", "q7", "ttrl rollouts generate"):
        assert fragment in message

"""Spurious-reward controls: seeded Bernoulli(γ) rewards and the format-only reward."""

from __future__ import annotations

import pytest

from ttrl.core.config import ComponentSpec, RunConfig
from ttrl.core.data import Rollout, RolloutGroup
from ttrl.core.estimation import EstimationPipeline
from ttrl.core.plugins import load_plugins


@pytest.fixture(scope="module")
def registry():
    return load_plugins(entry_points=False, warn=False).registry


def run(registry, name, texts, group_id="g", **options):
    pipeline = EstimationPipeline.from_config(RunConfig(), registry, ComponentSpec(name=name, options=options))
    group = RolloutGroup(id=group_id, prompt="?", rollouts=[Rollout(text=t) for t in texts])
    pipeline.check_inputs(group)
    return pipeline.run(group)


def test_random_reward_is_reproducible_per_group_and_seed(registry):
    texts = ["x"] * 16
    first = run(registry, "random_reward", texts, group_id="math500/7").rewards
    assert run(registry, "random_reward", texts, group_id="math500/7").rewards == first
    assert set(first) <= {0.0, 1.0}
    # pinned (numpy's PCG64 seeded with [seed, crc32(id)]): a change of the seeding would silently
    # change every bench result that used it
    assert first == [0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 1.0]
    assert run(registry, "random_reward", texts, group_id="math500/8").rewards != first
    assert run(registry, "random_reward", texts, group_id="math500/7", seed=1).rewards != first


def test_random_reward_rate_is_gamma(registry):
    draws = [r for g in range(200) for r in run(registry, "random_reward", ["x"] * 16, group_id=f"g{g}", gamma=0.3).rewards]
    # 3,200 Bernoulli(0.3) draws: standard error 0.008
    assert sum(draws) / len(draws) == pytest.approx(0.3, abs=0.03)
    assert run(registry, "spurious_random", ["x"] * 5, gamma=0.0).rewards == [0.0] * 5
    assert run(registry, "spurious_random", ["x"] * 5, gamma=1.0).rewards == [1.0] * 5


TEXTS = [
    "So it is $\\boxed{12}$.",
    "Boxed but empty: \\boxed{}",
    "The answer is 12.",
    "I think it is about 12 or so",
    "No idea.",
]


def test_format_reward_wants_a_non_empty_box(registry):
    est = run(registry, "format_reward", TEXTS)
    assert est.rewards == [1.0, 0.0, 0.0, 0.0, 0.0]
    assert est.label is None


def test_format_reward_with_any_extractable_answer(registry):
    # the math extractor also accepts "the answer is X" and, as a last resort, a last number
    est = run(registry, "format_reward", TEXTS, require="answer")
    assert est.rewards == [1.0, 0.0, 1.0, 1.0, 0.0]
    boxed_only = EstimationPipeline.from_config(RunConfig(), registry, ComponentSpec(name="format_reward"))
    assert boxed_only.requires == frozenset()

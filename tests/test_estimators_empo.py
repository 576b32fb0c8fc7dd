"""EMPO: semantic-class probabilities as rewards, the entropy threshold and no-answer handling, by hand.

Group of N = 8: answers A A A B B C and two rollouts without an answer. Each unanswered rollout is a
semantic class of its own, so p = (3, 2, 1, 1, 1)/8 and
  H = -(3/8 ln 3/8 + 2/8 ln 2/8 + 3 · 1/8 ln 1/8) = 0.367811 + 0.346574 + 0.779791 = 1.494175 < ln 8 = 2.079442.
"""

from __future__ import annotations

import math

import pytest

from ttrl.core.config import ComponentSpec, RunConfig
from ttrl.core.data import Rollout, RolloutGroup
from ttrl.core.estimation import EstimationPipeline
from ttrl.core.plugins import load_plugins

H_GROUP = 1.494175


@pytest.fixture(scope="module")
def registry():
    return load_plugins(entry_points=False, warn=False).registry


def run(registry, answers, **options):
    pipeline = EstimationPipeline.from_config(RunConfig(), registry, ComponentSpec(name="empo", options=options))
    rollouts = [Rollout(text="No idea." if a is None else f"The answer is $\\boxed{{{a}}}$") for a in answers]
    group = RolloutGroup(id="g", prompt="?", rollouts=rollouts)
    pipeline.check_inputs(group)
    return pipeline.run(group)


GROUP = ["3", "3", "3", "\\frac{1}{2}", "0.5", "7", None, None]  # 1/2 and 0.5 are one class


def test_reward_is_the_probability_of_the_rollouts_class(registry):
    est = run(registry, GROUP)
    assert est.label == "3"
    assert est.rewards == pytest.approx([3 / 8] * 3 + [2 / 8] * 2 + [1 / 8, 0.0, 0.0])
    assert est.diagnostics["semantic_entropy"] == pytest.approx(H_GROUP, abs=1e-6)
    assert est.diagnostics["entropy_threshold"] == pytest.approx(math.log(8))
    assert "filtered" not in est.diagnostics


def test_no_answer_reward_of_the_free_form_variant(registry):
    est = run(registry, GROUP, no_answer_reward=-0.5)
    assert est.rewards[-2:] == [-0.5, -0.5]
    assert est.rewards[0] == pytest.approx(3 / 8)


def test_a_group_where_every_answer_differs_is_dropped(registry):
    # H = ln 4 exactly: not below ln N, so all rewards are 0 and there is no label
    est = run(registry, ["1", "2", "3", "4"])
    assert est.rewards == [0.0] * 4 and est.label is None
    assert est.diagnostics["filtered"] is True and est.diagnostics["candidate_label"] == "1"
    # unanswered rollouts count as distinct classes too: two unanswered and two different answers
    assert run(registry, ["1", None, "2", None]).label is None


def test_entropy_ratio_and_majority_ratio_thresholds(registry):
    # ρ = 0.7: threshold 0.7 · ln 8 = 1.4556 <= H = 1.4942, dropped; ρ = 0.75 (1.5596) keeps it
    assert run(registry, GROUP, max_entropy_ratio=0.7).label is None
    assert run(registry, GROUP, max_entropy_ratio=0.75).label == "3"
    # the largest class is 3/8 = 0.375 of N
    assert run(registry, GROUP, min_majority_ratio=0.4).diagnostics["filtered"] is True
    assert run(registry, GROUP, min_majority_ratio=0.375).label == "3"


def test_nobody_answered(registry):
    est = run(registry, [None, None])
    assert est.rewards == [0.0, 0.0] and est.label is None
    assert "no rollout" in est.diagnostics["reason"]

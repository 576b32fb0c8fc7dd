"""Estimators registered as presets of others (srt, trajectory_entropy), sequence probability, and
``ttrl estimators`` grouping them by what they need."""

from __future__ import annotations

import json
import math

import pytest

from ttrl.core.config import ComponentSpec, RunConfig
from ttrl.core.data import Rollout, RolloutGroup
from ttrl.core.estimation import EstimationPipeline
from ttrl.core.plugins import load_plugins
from ttrl.core.registry import Registry
from ttrl.plugins.majority_vote import MajorityVoteOptions, estimate_majority_vote


@pytest.fixture(scope="module")
def registry():
    return load_plugins(entry_points=False, warn=False).registry


def run(registry, name, rollouts, **options):
    pipeline = EstimationPipeline.from_config(RunConfig(), registry, ComponentSpec(name=name, options=options))
    group = RolloutGroup(id="g", prompt="?", rollouts=rollouts)
    pipeline.check_inputs(group)
    return pipeline.run(group)


def boxed(answers):
    return [Rollout(text="Unsure." if a is None else f"\\boxed{{{a}}}") for a in answers]


def test_srt_is_majority_vote_at_its_paper_defaults(registry):
    answers = ["4", "4", None, None, "5"]
    assert run(registry, "srt", boxed(answers)).rewards == run(registry, "majority_vote", boxed(answers)).rewards
    assert registry.estimators.get("srt").function is estimate_majority_vote


def test_srt_threshold_counts_only_answered_rollouts(registry):
    # label 4 holds 2 of N = 5 (0.4) but 2 of the 3 answered (0.667)
    answers = ["4", "4", None, None, "5"]
    tt = run(registry, "majority_vote", boxed(answers), min_majority_ratio=0.5)
    assert tt.label is None and tt.diagnostics["filtered"] is True
    srt = run(registry, "srt", boxed(answers), min_majority_ratio=0.5)
    assert srt.label == "4" and srt.rewards == [1.0, 1.0, 0.0, 0.0, 0.0]
    assert run(registry, "srt", boxed(answers), min_majority_ratio=0.7).label is None


def test_trajectory_entropy_is_entropy_with_the_sequence_variant(registry):
    rollouts = [Rollout(text="a", stats={"mean_entropy": 0.3, "mean_logprob": -0.2}),
                Rollout(text="b", stats={"mean_entropy": 0.1, "mean_logprob": -0.9})]
    assert run(registry, "trajectory_entropy", rollouts).rewards == pytest.approx([-0.2, -0.9])
    # the preset only changes a default: variant=token gives the token-level entropy again
    assert run(registry, "trajectory_entropy", rollouts, variant="token").rewards == pytest.approx([-0.3, -0.1])
    info = registry.estimators.get("trajectory_entropy")
    assert info.options().variant == "sequence" and registry.estimators.get("entropy").options().variant == "token"


def test_sequence_probability_falls_geometrically_with_length(registry):
    # the same per-token log-prob -0.5 over 2 and 4 tokens: exp(-1) and exp(-2), the square
    rollouts = [Rollout(text="a", stats={"num_tokens": 2, "mean_logprob": -0.5}),
                Rollout(text="b", stats={"num_tokens": 4, "mean_logprob": -0.5})]
    est = run(registry, "sequence_probability", rollouts)
    assert est.rewards == pytest.approx([math.exp(-1), math.exp(-2)])
    assert est.rewards[1] == pytest.approx(est.rewards[0] ** 2)
    assert run(registry, "probability", rollouts, log=True).rewards == pytest.approx([-1.0, -2.0])


def test_sequence_probability_from_token_arrays_alone(registry):
    import numpy as np

    est = run(registry, "sequence_probability", [Rollout(text="a", token_logprob=np.array([-0.1, -0.2, -0.3]))])
    assert est.rewards == pytest.approx([math.exp(-0.6)])


def test_defaults_are_validated_when_registered():
    registry = Registry()
    register = registry.estimator_callback("ttrl-demo")
    register("ok", estimate_majority_vote, options=MajorityVoteOptions, defaults={"min_majority_ratio": 0.3})
    register("bad_value", estimate_majority_vote, options=MajorityVoteOptions, defaults={"min_majority_ratio": 3})
    register("bad_name", estimate_majority_vote, options=MajorityVoteOptions, defaults={"threshold": 0.3})
    register("no_model", estimate_majority_vote, defaults={"min_majority_ratio": 0.3})
    assert registry.estimators.names() == ["ok"]
    assert registry.estimators.get("ok").options().min_majority_ratio == 0.3
    reasons = {r.name: r.reason for r in registry.rejections}
    assert "less than or equal to 1" in reasons["bad_value"]
    assert "threshold" in reasons["bad_name"]
    assert "without options" in reasons["no_model"]


def test_estimators_listing_groups_by_needs(run_ttrl):
    result = run_ttrl("estimators", "--json")
    assert result.returncode == 0, result.stderr
    needs = {row["name"]: row["needs"] for row in json.loads(result.stdout)}
    assert needs["random_reward"] == [] and needs["format_reward"] == []
    assert needs["majority_vote"] == needs["srt"] == needs["empo"] == ["answers"]
    assert needs["self_certainty"] == needs["sequence_probability"] == ["token statistics"]
    assert needs["dare"] == ["answers", "token statistics"]
    assert needs["confidence_vote"] == ["answers", "top-k confidence"]
    srt = {o["name"]: o["default"] for o in next(r for r in json.loads(result.stdout) if r["name"] == "srt")["options"]}
    assert srt["ratio_of"] == "answered"
    text = run_ttrl("estimators").stdout
    assert text.index("needs only the rollout texts") < text.index("random_reward") < text.index("needs answers")
    assert text.index("needs answers + top-k confidence") < text.index("confidence_vote")

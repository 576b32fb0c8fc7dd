"""entropy (RENT, EM-RL) and self_certainty (INTUITOR) on token statistics of hand-made distributions.

Vocabulary of |V| = 4 tokens. Two next-token distributions, worked by hand (nats):
  uniform (1/4, 1/4, 1/4, 1/4):   H = log 4 = 1.386294,  KL(U‖p) = 0,         log p(sampled) = -1.386294
  peaked  (0.97, 0.01, 0.01, 0.01): H = 0.167701,         KL(U‖p) = 2.075198,  log p(0.97)    = -0.030459
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from ttrl.core.config import ComponentSpec, RunConfig
from ttrl.core.data import Rollout, RolloutGroup
from ttrl.core.errors import EstimatorInputError, OptionError
from ttrl.core.estimation import EstimationPipeline
from ttrl.core.plugins import load_plugins

UNIFORM = [0.25, 0.25, 0.25, 0.25]
PEAKED = [0.97, 0.01, 0.01, 0.01]
LOG4 = 1.386294
H_PEAKED, SC_PEAKED, LP_PEAKED = 0.167701, 2.075198, -0.030459


@pytest.fixture(scope="module")
def registry():
    return load_plugins(entry_points=False, warn=False).registry


def rollout_from(distributions, text="\\boxed{1}", arrays=True):
    """A rollout whose tokens were sampled (always token 0) from the given next-token distributions."""
    p = np.asarray(distributions, dtype=np.float64)
    logp = np.log(p)
    entropy = -(p * logp).sum(axis=1)
    self_certainty = -math.log(p.shape[1]) - logp.mean(axis=1)
    logprob = logp[:, 0]
    if arrays:
        return Rollout(text=text, token_entropy=entropy, token_self_certainty=self_certainty, token_logprob=logprob)
    stats = {"mean_entropy": entropy.mean(), "mean_self_certainty": self_certainty.mean(), "mean_logprob": logprob.mean()}
    return Rollout(text=text, stats={k: float(v) for k, v in stats.items()})


def run(registry, name, rollouts, group_id="g", **options):
    pipeline = EstimationPipeline.from_config(RunConfig(), registry, ComponentSpec(name=name, options=options))
    group = RolloutGroup(id=group_id, prompt="?", rollouts=rollouts)
    pipeline.check_inputs(group)
    return pipeline.run(group)


# rollout A: a uniform token then a peaked one; rollout B: two peaked tokens; rollout U: uniform only
A, B, U = [UNIFORM, PEAKED], [PEAKED, PEAKED], [UNIFORM, UNIFORM]


@pytest.mark.parametrize("arrays", [True, False], ids=["token-arrays", "stats-only"])
def test_entropy_reward_is_minus_mean_token_entropy(registry, arrays):
    est = run(registry, "entropy", [rollout_from(x, arrays=arrays) for x in (A, B, U)])
    assert est.label is None
    assert est.rewards == pytest.approx([-(LOG4 + H_PEAKED) / 2, -H_PEAKED, -LOG4], abs=1e-6)


@pytest.mark.parametrize("arrays", [True, False], ids=["token-arrays", "stats-only"])
def test_self_certainty_is_zero_for_uniform_and_grows_with_confidence(registry, arrays):
    est = run(registry, "self-certainty", [rollout_from(x, arrays=arrays) for x in (A, B, U)])
    assert est.rewards == pytest.approx([SC_PEAKED / 2, SC_PEAKED, 0.0], abs=1e-6)


def test_both_rank_the_confident_rollout_first(registry):
    rollouts = [rollout_from(x) for x in (U, A, B)]
    for name in ("entropy", "self_certainty"):
        rewards = run(registry, name, rollouts).rewards
        assert rewards[0] < rewards[1] < rewards[2], name


def test_last_k_scores_only_the_final_tokens(registry):
    # A ends with its peaked token: over the last 1 token it looks as confident as B.
    est = run(registry, "entropy", [rollout_from(A), rollout_from(B)], scope="last_k", last_k=1)
    assert est.rewards == pytest.approx([-H_PEAKED, -H_PEAKED], abs=1e-6)
    # a last_k longer than the response scores the whole response
    longer = run(registry, "entropy", [rollout_from(A)], scope="last_k", last_k=50)
    assert longer.rewards == pytest.approx([-(LOG4 + H_PEAKED) / 2], abs=1e-6)


def test_sequence_variant_is_the_mean_sampled_logprob(registry):
    est = run(registry, "entropy", [rollout_from(A), rollout_from(B, arrays=False)], variant="sequence")
    assert est.rewards == pytest.approx([(-LOG4 + LP_PEAKED) / 2, LP_PEAKED], abs=1e-6)
    last = run(registry, "entropy", [rollout_from(A)], variant="sequence", scope="last_k", last_k=1)
    assert last.rewards == pytest.approx([LP_PEAKED], abs=1e-6)


def test_rent_no_answer_penalty(registry):
    rollouts = [rollout_from(B), rollout_from(B, text="I am not sure."), rollout_from(U)]
    est = run(registry, "entropy", rollouts, no_answer_penalty=-7.0)
    assert est.rewards == pytest.approx([-H_PEAKED, -7.0, -LOG4], abs=1e-6)
    assert est.diagnostics["penalised"] == [1]


@pytest.mark.parametrize(
    ("options", "needs"),
    [
        ({}, {"mean_entropy"}),
        ({"scope": "last_k"}, {"token_entropy"}),
        ({"variant": "sequence"}, {"mean_logprob"}),
        ({"variant": "sequence", "scope": "last_k"}, {"token_logprob"}),
        ({"no_answer_penalty": -7.0}, {"mean_entropy", "answers"}),
    ],
)
def test_entropy_requires_follows_its_options(registry, options, needs):
    pipeline = EstimationPipeline.from_config(RunConfig(), registry, ComponentSpec(name="entropy", options=options))
    assert pipeline.requires == needs


def test_self_certainty_requires_only_its_statistic(registry):
    assert registry.estimators.get("self_certainty").required_inputs(None) == {"mean_self_certainty"}


def test_last_k_on_stats_only_rollouts_names_the_missing_array(registry):
    with pytest.raises(EstimatorInputError) as info:
        run(registry, "entropy", [rollout_from(A, arrays=False)], group_id="gsm8k/12", scope="last_k")
    message = str(info.value)
    for fragment in ("needs token_entropy", "'entropy' with scope=last_k", "gsm8k/12", "ttrl rollouts generate"):
        assert fragment in message


def test_missing_self_certainty_names_field_and_the_fix(registry):
    with pytest.raises(EstimatorInputError) as info:
        run(registry, "self_certainty", [Rollout(text="\\boxed{2}", stats={"mean_entropy": 0.3})], group_id="q1")
    message = str(info.value)
    for fragment in ("stats.mean_self_certainty", "'self_certainty'", "q1", "ttrl rollouts generate"):
        assert fragment in message


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_statistics_name_the_group(registry, bad):
    rollout = rollout_from(A)
    rollout.token_entropy[1] = bad
    with pytest.raises(EstimatorInputError, match="math500/7") as info:
        run(registry, "entropy", [rollout_from(B), rollout], group_id="math500/7", scope="last_k")
    assert "rollout 1: token_entropy[1]" in str(info.value)  # the rollout and the token


def test_self_certainty_takes_no_options(registry):
    with pytest.raises(OptionError, match="takes no options"):
        run(registry, "self_certainty", [rollout_from(A)], scope="last_k")

"""confidence_vote (DeepConf): trace confidences, top-η filtering and the weighted vote, by hand.

Token confidences of four answered traces and one unanswered one (window 2):
  r0 A [1, 1, 1, 1]   mean 1   windows (1, 1, 1)   lowest 1
  r1 A [2, 2, 2, 2]   mean 2   windows (2, 2, 2)   lowest 2
  r2 B [4, 4, 0, 0]   mean 2   windows (4, 2, 0)   lowest 0   tail-3 4/3
  r3 B [3, 3, 3, 3]   mean 3   windows (3, 3, 3)   lowest 3
  r4 - [9, 9]         no answer: never votes, reward 0
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from ttrl.core.config import ComponentSpec, RunConfig
from ttrl.core.data import Rollout, RolloutGroup
from ttrl.core.errors import EstimatorInputError
from ttrl.core.estimation import EstimationPipeline
from ttrl.core.plugins import load_plugins
from ttrl.plugins.confidence_vote import window_means

TRACES = [("A", [1, 1, 1, 1]), ("A", [2, 2, 2, 2]), ("B", [4, 4, 0, 0]), ("B", [3, 3, 3, 3]), (None, [9, 9])]


@pytest.fixture(scope="module")
def registry():
    return load_plugins(entry_points=False, warn=False).registry


def rollout(answer, confidences):
    text = "Hmm." if answer is None else f"\\boxed{{{answer}}}"
    return Rollout(text=text, token_confidence=np.asarray(confidences, dtype=np.float64))


def run(registry, traces=TRACES, group_id="g", **options):
    pipeline = EstimationPipeline.from_config(RunConfig(), registry, ComponentSpec(name="confidence_vote", options=options))
    group = RolloutGroup(id=group_id, prompt="?", rollouts=[rollout(a, c) for a, c in traces])
    pipeline.check_inputs(group)
    return pipeline.run(group)


def test_mean_confidence_weighted_vote_without_filtering(registry):
    # weights A = 1 + 2 = 3, B = 2 + 3 = 5
    est = run(registry, trace_confidence="mean", keep_top=1.0)
    assert est.label == "B"
    assert est.rewards == [0.0, 0.0, 1.0, 1.0, 0.0]
    assert est.diagnostics["weights"] == pytest.approx([3.0, 5.0])
    assert est.diagnostics["trace_confidence"] == pytest.approx([1.0, 2.0, 2.0, 3.0, None])


def test_top_eta_keeps_traces_at_or_above_the_quantile(registry):
    # lowest-window confidences (1, 2, 0, 3): the median 1.5 keeps r1 and r3, so A = 2 and B = 3
    est = run(registry, trace_confidence="lowest_window", window=2, keep_top=0.5)
    assert est.diagnostics["threshold"] == pytest.approx(1.5)
    assert est.diagnostics["kept"] == [1, 3]
    assert est.label == "B"
    # every rollout is rewarded for agreeing with the label, kept or not
    assert est.rewards == [0.0, 0.0, 1.0, 1.0, 0.0]


def test_lowest_window_tie_goes_to_the_answer_seen_first(registry):
    # without filtering: A = 1 + 2 = 3, B = 0 + 3 = 3
    est = run(registry, trace_confidence="lowest_window", window=2, keep_top=1.0)
    assert est.label == "A"
    assert est.rewards == [1.0, 1.0, 0.0, 0.0, 0.0]


def test_tail_and_bottom_window(registry):
    # tail of 3 tokens: r2 = 4/3, so B = 4/3 + 3 beats A = 3
    assert run(registry, trace_confidence="tail", tail_tokens=3, keep_top=1.0).label == "B"
    # bottom 50% of r2's three windows is int(1.5) = 1 window: its lowest, 0; so A = 3 ties B = 3
    est = run(registry, trace_confidence="bottom_window", window=2, bottom_fraction=0.5, keep_top=1.0)
    assert est.diagnostics["trace_confidence"][2] == pytest.approx(0.0)
    assert est.label == "A"
    # bottom 100% averages all windows: r2 = (4 + 2 + 0) / 3 = 2
    est = run(registry, trace_confidence="bottom_window", window=2, bottom_fraction=1.0, keep_top=1.0)
    assert est.diagnostics["trace_confidence"][2] == pytest.approx(2.0)


def test_window_longer_than_the_trace_uses_its_mean():
    assert window_means(np.array([4.0, 4.0, 0.0, 0.0]), 2048).tolist() == [2.0]
    assert window_means(np.array([1.0, 2.0, 3.0]), 2).tolist() == [1.5, 2.5]


def test_defaults_are_deepconfs_and_read_the_token_array(registry):
    info = registry.estimators.get("deepconf")
    defaults = info.options()
    assert (defaults.trace_confidence, defaults.window, defaults.bottom_fraction, defaults.keep_top) == (
        "bottom_window", 2048, 0.1, 0.1)
    assert info.required_inputs(defaults) == {"answers", "token_confidence"}
    assert info.needs() == ("answers", "top-k confidence")


def test_mean_reads_stats_and_a_missing_array_is_named(registry):
    rollouts = [Rollout(text="\\boxed{1}", stats={"mean_confidence": 2.0}), Rollout(text="\\boxed{2}", stats={"mean_confidence": 5.0})]
    pipeline = EstimationPipeline.from_config(
        RunConfig(), registry, ComponentSpec(name="confidence_vote", options={"trace_confidence": "mean", "keep_top": 1.0}))
    group = RolloutGroup(id="g", prompt="?", rollouts=rollouts)
    pipeline.check_inputs(group)
    assert pipeline.run(group).label == "2"
    default = EstimationPipeline.from_config(RunConfig(), registry, ComponentSpec(name="confidence_vote"))
    with pytest.raises(EstimatorInputError, match="needs token_confidence.*group 'g'"):
        default.check_inputs(group)


def test_from_a_rollout_file_through_the_cli(run_ttrl, tmp_path):
    line = {"id": "q", "prompt": "?", "meta": {"confidence_k": 20}, "rollouts": [
        {"text": f"\\boxed{{{a}}}", "token_confidence": c, "stats": {"mean_confidence": float(np.mean(c))}}
        for a, c in TRACES if a is not None]}
    data = tmp_path / "r.jsonl"
    data.write_text(json.dumps(line) + "\n")
    out = tmp_path / "e.jsonl"
    result = run_ttrl("estimate", "--data", str(data), "--estimator", "deepconf", "--option", "keep_top=1.0",
                      "--option", "window=2", "--option", "trace_confidence=lowest_window", "--output", str(out))
    assert result.returncode == 0, result.stderr
    estimate = json.loads(out.read_text())
    assert estimate["estimator"] == "confidence_vote" and estimate["label"] == "A"
    assert estimate["rewards"] == [1.0, 1.0, 0.0, 0.0]


def test_the_built_in_rollout_set_carries_token_confidence(registry):
    from ttrl.core.rollout_files import read_rollout_file
    from ttrl.harness.builtin import BUILTIN_ROLLOUTS

    records = read_rollout_file(BUILTIN_ROLLOUTS, strict=True).records
    assert len(records) == 100
    pipeline = EstimationPipeline.from_config(RunConfig(), registry, ComponentSpec(name="confidence_vote"))
    for record in records:
        assert record.group.meta["confidence_k"] == 20
        for r in record.group.rollouts:
            assert len(r.token_confidence) == r.stats["num_tokens"]
            assert r.stats["mean_confidence"] == pytest.approx(float(np.mean(r.token_confidence)), abs=1e-5)
            assert (r.token_confidence >= 0).all()  # -mean of log-probs, each <= 0
        pipeline.check_inputs(record.group)

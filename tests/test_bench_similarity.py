"""`ttrl bench` on the built-in free-form/code rollouts: similarity estimators next to the vote and the
token-statistics estimators, the stated thresholds, and rollout correlation on real and simulated data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ttrl.core.config import ComponentSpec, RunConfig
from ttrl.core.plugins import load_plugins
from ttrl.core.rollout_files import iter_rollout_file
from ttrl.core.similarity import rollout_correlation
from ttrl.harness.correlation import accuracy_by_correlation, correlation_bins
from ttrl.harness.plan import BenchPlan, PluginRecipe
from ttrl.harness.runner import run_bench
from ttrl.harness.simulate import SimulationSettings
from ttrl.harness.sources import simulated_dataset

DATA = Path(__file__).resolve().parents[1] / "ttrl" / "data" / "similarity_rollouts.jsonl"


def test_the_set_is_found_where_the_package_is():
    from ttrl.harness.builtin import SIMILARITY_ROLLOUTS

    assert SIMILARITY_ROLLOUTS.samefile(DATA)
ESTIMATORS = "consensus_similarity,majority_vote,dare,empo,confidence_vote,entropy,self_certainty"


def test_the_shipped_set_is_real_model_output():
    records = list(iter_rollout_file(DATA))
    assert len(records) == 24
    assert {r.group.task for r in records} == {"free_form", "code"}
    for record in records:
        assert record.reference and len(record.group.rollouts) == 8
        assert record.group.meta["model"] == "smollm2-135m"
        assert all(r.stat("mean_entropy") is not None and r.token_logprob is not None for r in record.group.rollouts)
        assert all(r.token_confidence is not None for r in record.group.rollouts)  # DeepConf's statistic too


def test_bench_compares_similarity_vote_and_token_estimators(tmp_path, run_ttrl):
    out, report = tmp_path / "results.json", tmp_path / "report"
    result = run_ttrl("bench", "--data", str(DATA), "--estimators", ESTIMATORS, "--output", str(out), "--report", str(report))
    assert result.returncode == 0, result.stderr
    results = json.loads(out.read_text())
    entries = {e["name"]: e for e in results["estimators"]}
    assert list(entries) == ESTIMATORS.split(",")
    assert all(e["skipped"] is None and e["failed_groups"] == 0 for e in entries.values())
    for name in ("consensus_similarity", "majority_vote", "dare", "empo", "confidence_vote"):
        assert entries[name]["metrics"]["label_accuracy"] is not None
    m = entries["majority_vote"]["metrics"]
    assert 0.0 < m["ground_truth_ratio"] < 1.0 and m["pairwise_accuracy"] is not None
    # the thresholds that made the classes and the grading are stated in the results
    assert results["answers"]["similarity_tasks"] == ["code", "free_form"]
    assert results["answers"]["rouge_l"] == {"class_threshold": 0.5, "grade_threshold": 0.5}
    assert results["answers"]["ast"] == {"class_threshold": 0.9, "grade_threshold": 0.95}
    assert 0.0 < results["data"]["rollout_correlation"] < 1.0
    assert "Rollout correlation (mean pairwise token overlap within a group)" in result.stderr
    assert (report / "accuracy_by_correlation.png").stat().st_size > 10_000
    assert "Accuracy by rollout correlation" in (report / "report.md").read_text()


def test_grading_threshold_is_changed_by_the_run_config(tmp_path, run_ttrl):
    config = tmp_path / "run.yaml"
    config.write_text("answers:\n  grade_thresholds: {rouge_l: 1.0, ast: 0.5}\n")
    out = tmp_path / "results.json"
    result = run_ttrl("bench", "--data", str(DATA), "--estimators", "majority_vote", "--config", str(config),
                      "--output", str(out))
    assert result.returncode == 0, result.stderr
    strict = json.loads(out.read_text())
    assert strict["answers"]["rouge_l"]["grade_threshold"] == 1.0 and strict["answers"]["ast"]["grade_threshold"] == 0.5
    default = run_ttrl("bench", "--data", str(DATA), "--estimators", "majority_vote", "--output", str(tmp_path / "d.json"))
    assert default.returncode == 0
    before = json.loads((tmp_path / "d.json").read_text())["estimators"][0]["metrics"]["ground_truth_ratio"]
    assert strict["estimators"][0]["metrics"]["ground_truth_ratio"] != before
    bad = tmp_path / "bad.yaml"
    bad.write_text("answers:\n  grade_thresholds: {rouge: 0.5}\n")
    refused = run_ttrl("bench", "--data", str(DATA), "--estimators", "majority_vote", "--config", str(bad))
    assert refused.returncode == 2 and "grade_thresholds" in refused.stderr and "Traceback" not in refused.stderr


def test_rollout_correlation_by_hand():
    # word sets {a, b} {a, c} {a, b}: J = 1/3, 1, 1/3 -> mean 5/9
    assert rollout_correlation(["a b", "a c", "b a"]) == pytest.approx(5 / 9)
    assert rollout_correlation(["alone"]) is None
    assert rollout_correlation(["", ""]) == 0.0


def test_simulated_data_has_a_correlation_too():
    settings = SimulationSettings(groups=40, rollouts=6, seed=1, correlation=0.5)
    plan = BenchPlan(specs=(ComponentSpec(name="majority_vote", label="majority_vote"),),
                     config=RunConfig().model_dump(mode="json"), recipe=PluginRecipe(entry_points=False),
                     keep_details=True)
    outcome = run_bench(plan, simulated_dataset(settings), registry=load_plugins(entry_points=False, warn=False).registry)
    assert 0.0 < outcome.results["data"]["rollout_correlation"] <= 1.0
    detail = outcome.details["majority_vote"]
    assert len(detail["correlation"]) == len(detail["scores"]["pair_count"]) == 40


def test_correlation_bins_and_accuracy_by_hand():
    correlation = [0.9, 0.1, None, 0.5, 0.2, 0.8, 0.3, 0.4, 0.6]
    bins = correlation_bins(correlation)  # 8 groups with a value: 2 bins of 4
    assert [(lo, hi, sorted(m)) for lo, hi, m in bins] == [(0.1, 0.4, [1, 4, 6, 7]), (0.5, 0.9, [0, 3, 5, 8])]
    scores = {"label_accuracy": [1.0, 0.0, None, 1.0, 0.0, None, 1.0, 0.0, 1.0],
              "pair_wins": [1, 0, 0, 2, 0.5, 0, 3, 1, 0], "pair_count": [1, 2, 0, 2, 1, 0, 4, 1, 0]}
    values = accuracy_by_correlation({"scores": scores}, bins)
    assert values["label_accuracy"] == [pytest.approx(1 / 4), pytest.approx(1.0)]
    assert values["pairwise_accuracy"] == [pytest.approx(4.5 / 8), pytest.approx(3 / 3)]


def test_the_example_config_runs(repo_root, tmp_path, run_ttrl):
    out = tmp_path / "results.json"
    result = run_ttrl("bench", "--data", str(DATA), "--config", str(repo_root / "examples/bench/free_form_code.yaml"),
                      "--output", str(out))
    assert result.returncode == 0, result.stderr
    entries = json.loads(out.read_text())["estimators"]
    assert [e["label"] for e in entries] == ["consensus_similarity", "consensus_similarity_theta0.6", "majority_vote", "dare"]
    assert entries[1]["options"]["threshold"] == 0.6 and entries[1]["metrics"]["reward_accuracy"] is not None

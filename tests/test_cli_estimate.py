"""`ttrl estimate` end to end: each built-in estimator on a real rollout file, and the user errors.

Runs the installed command line in a subprocess (``python -m ttrl``), so exit statuses and messages are
exactly what a user sees.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest


def ttrl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ttrl", *map(str, args)], capture_output=True, text=True, timeout=120)


def rollout(answer: str | None, entropy: float, certainty: float, logprob: float, tokens: list[float] | None = None):
    text = "Hmm, I cannot tell." if answer is None else f"... so the answer is $\\boxed{{{answer}}}$."
    line = {"text": text, "stats": {"num_tokens": 2, "mean_entropy": entropy, "mean_self_certainty": certainty,
                                     "mean_logprob": logprob}}
    if tokens is not None:
        line["token_entropy"] = tokens
    return line


# The TTRL paper's lucky hit (answers 1,1,2,2,2,4,5,6, truth 3), with statistics: rollout i has mean
# entropy 0.1*(i+1), self-certainty 2 - 0.1*i and mean log-prob -0.05*(i+1).
LUCKY = ["1", "1", "2", "2", "2", "4", "5", "6"]
# DARE's hand-worked group (tests/test_estimators_dare.py): answers with their mean token entropies.
DARE = [("A", 0.2), ("A", 0.3), ("B", 0.4), ("A", 0.25), ("C", 0.25), ("B", 0.6), ("D", 2.0), ("A", 0.25)]


@pytest.fixture(scope="module")
def rollout_file(tmp_path_factory) -> Path:
    lucky = {
        "id": "ttrl/lucky-hit", "prompt": "What is 1 + 2?", "reference": "3",
        "rollouts": [rollout(a, 0.1 * (i + 1), 2 - 0.1 * i, -0.05 * (i + 1), tokens=[0.9, 0.1 * (i + 1)])
                     for i, a in enumerate(LUCKY)],
        "meta": {"model": "hand-written", "vocab_size": 49152},
    }
    dare = {
        "id": "dare/hand-worked", "prompt": "Pick a letter.",
        "rollouts": [rollout(a, h, 1.0, -0.5, tokens=[h, h]) for a, h in DARE] + [rollout(None, 0.3, 1.0, -0.5, [0.3])],
    }
    path = tmp_path_factory.mktemp("data") / "rollouts.jsonl"
    path.write_text("".join(json.dumps(g) + "\n" for g in (lucky, dare)), encoding="utf-8")
    return path


def estimate(rollout_file: Path, tmp_path: Path, *args: str) -> list[dict]:
    out = tmp_path / "estimates.jsonl"
    result = ttrl("estimate", "--data", rollout_file, "--output", out, *args)
    assert result.returncode == 0, result.stderr
    assert "Wrote 2 estimate(s)" in result.stderr
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [line["id"] for line in lines] == ["ttrl/lucky-hit", "dare/hand-worked"]
    return lines


def test_majority_vote(rollout_file, tmp_path):
    lucky, dare = estimate(rollout_file, tmp_path, "--estimator", "majority_vote", "--option", "n_train=4")
    assert lucky["estimator"] == "majority_vote"
    assert lucky["label"] == "2"
    assert lucky["rewards"] == [0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0]
    assert lucky["diagnostics"]["train_indices"] == [0, 1, 2, 3]
    assert dare["label"] == "A" and dare["rewards"] == [1, 1, 0, 1, 0, 0, 0, 1, 0]


def test_dare(rollout_file, tmp_path):
    _, dare = estimate(rollout_file, tmp_path, "--estimator", "dare", "--option", "alpha=0.5", "--option", "tau=0.05")
    # the values worked by hand in tests/test_estimators_dare.py; M is 9 here (one rollout has no answer),
    # which changes only the bonus: A (1-4/9)(0.75), B (1-2/9)(0.5), C (1-1/9)(0.75).
    r_a, r_b, r_c = 2 / 3 + 0.5 * (5 / 9) * 0.75, 1 / 6 + 0.5 * (7 / 9) * 0.5, 1 / 6 + 0.5 * (8 / 9) * 0.75
    assert dare["label"] == "A"
    assert dare["rewards"] == pytest.approx([r_a, r_a, r_b, r_a, r_c, r_b, 0.0, r_a, 0.0], rel=1e-5)
    assert dare["diagnostics"]["pruned"] == ["D"]


def test_entropy_all_tokens_and_last_k(rollout_file, tmp_path):
    lucky, _ = estimate(rollout_file, tmp_path, "--estimator", "rent")
    assert lucky["estimator"] == "entropy" and lucky["label"] is None
    assert lucky["rewards"] == pytest.approx([-0.1 * (i + 1) for i in range(8)])
    last, _ = estimate(rollout_file, tmp_path, "--estimator", "entropy", "--option", "scope=last_k",
                       "--option", "last_k=1")
    assert last["rewards"] == pytest.approx([-0.1 * (i + 1) for i in range(8)])
    both, _ = estimate(rollout_file, tmp_path, "--estimator", "entropy", "--option", "scope=last_k",
                       "--option", "last_k=2")
    assert both["rewards"] == pytest.approx([-(0.9 + 0.1 * (i + 1)) / 2 for i in range(8)])


def test_entropy_sequence_variant_with_rent_penalty(rollout_file, tmp_path):
    lucky, dare = estimate(rollout_file, tmp_path, "--estimator", "entropy", "--option", "variant=sequence",
                           "--option", "no_answer_penalty=-7.0")
    assert lucky["rewards"] == pytest.approx([-0.05 * (i + 1) for i in range(8)])
    assert dare["rewards"] == pytest.approx([-0.5] * 8 + [-7.0])


def test_self_certainty_by_its_hyphenated_name(rollout_file, tmp_path):
    lucky, _ = estimate(rollout_file, tmp_path, "--estimator", "self-certainty")
    assert lucky["estimator"] == "self_certainty"
    assert lucky["rewards"] == pytest.approx([2 - 0.1 * i for i in range(8)])


def test_estimator_and_options_from_a_run_config(rollout_file, tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("estimator:\n  name: majority_vote\n  options: {min_majority_ratio: 0.5}\n", encoding="utf-8")
    lucky, dare = estimate(rollout_file, tmp_path, "--config", config)
    assert lucky["label"] is None and lucky["diagnostics"]["filtered"] is True  # 3/8 < 0.5
    assert dare["label"] is None and dare["diagnostics"]["candidate_label"] == "A"  # 4/9 < 0.5 too
    assert dare["rewards"] == [0.0] * 9


def user_error(rollout_path: Path, tmp_path: Path, *args: str) -> str:
    out = tmp_path / "never.jsonl"
    result = ttrl("estimate", "--data", rollout_path, "--output", out, *args)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()
    return result.stderr


def test_unknown_estimator_suggests_the_close_name(rollout_file, tmp_path):
    message = user_error(rollout_file, tmp_path, "--estimator", "majority-vot")
    assert "Unknown estimator 'majority-vot'" in message
    assert "Did you mean" in message and "majority_vote" in message


def test_bad_option_type_names_estimator_option_type_and_value(rollout_file, tmp_path):
    message = user_error(rollout_file, tmp_path, "--estimator", "dare", "--option", "alpha=abc")
    for fragment in ("'dare'", "'alpha'", "float", "'abc'"):
        assert fragment in message


def test_missing_stats_names_field_estimator_and_how_to_make_them(tmp_path):
    bare = tmp_path / "bare.jsonl"
    bare.write_text(json.dumps({"id": "bare/1", "prompt": "?", "rollouts": [{"text": "\\boxed{1}"}]}) + "\n")
    message = user_error(bare, tmp_path, "--estimator", "entropy")
    for fragment in ("stats.mean_entropy", "'entropy'", "bare/1", "ttrl rollouts generate"):
        assert fragment in message
    # majority vote needs only answers, so the same file works with it
    assert ttrl("estimate", "--data", bare, "--output", tmp_path / "ok.jsonl", "--estimator", "majority_vote").returncode == 0


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_statistic_names_the_group(tmp_path, bad):
    group = {"id": "math500/broken-7", "prompt": "?",
             "rollouts": [{"text": "\\boxed{1}", "stats": {"mean_entropy": 0.2}},
                          {"text": "\\boxed{2}", "stats": {"mean_entropy": bad}}]}
    path = tmp_path / "nan.jsonl"
    path.write_text(json.dumps(group) + "\n")  # json writes NaN / Infinity, as numpy-based writers do
    message = user_error(path, tmp_path, "--estimator", "dare")
    assert "math500/broken-7" in message and "stats.mean_entropy" in message

"""User errors exit 2 with one paragraph and no traceback; TTRL_DEBUG=1 shows the traceback."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("args, fragment", [
    (["estimate", "--data", "missing.jsonl", "--estimator", "majority_vote", "--output", "o.jsonl"], "does not exist"),
    (["estimate", "--data", "{tiny}", "--estimator", "majorty", "--output", "o.jsonl"], "Did you mean: majority"),
    (["estimate", "--data", "{tiny}", "--estimator", "majority_vote", "--option", "novalue", "--output", "o.jsonl"],
     "is not KEY=VALUE"),
    (["estimate", "--data", "{tiny}", "--output", "o.jsonl"], "No estimator selected"),
    (["train", "--config", "missing.yaml"], "does not exist"),
])
def test_user_errors(run_ttrl, repo_root, args, fragment):
    tiny = str(repo_root / "examples/rollouts/tiny.jsonl")
    result = run_ttrl(*[a.replace("{tiny}", tiny) for a in args])
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("Error: ") and fragment in result.stderr
    assert "Traceback" not in result.stderr


def test_usage_errors_are_exit_2_too(run_ttrl):
    result = run_ttrl("estimate", "--estimator", "majority_vote")
    assert result.returncode == 2 and "Missing option '--data'" in result.stderr


def test_debug_shows_the_traceback(run_ttrl):
    result = run_ttrl("estimate", "--data", "missing.jsonl", "--estimator", "majority_vote", "--output", "o.jsonl",
                      env={"TTRL_DEBUG": "1"})
    assert result.returncode == 2 and "Traceback (most recent call last)" in result.stderr


def test_unknown_trainer(run_ttrl, tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("estimator: {name: majority_vote}\ntrainer: nemo-rl\n")
    result = run_ttrl("train", "--config", str(config), "--dry-run")
    assert result.returncode == 2 and f"Unknown trainer 'nemo-rl' ({config}:2)" in result.stderr
    assert "openrlhf, trl, verl" in result.stderr

"""`trainer: verl` where verl is not installed (ttrl's main environment: verl lives in .venv-verl).

A run config's mistakes are reported first, so a typo is found on a laptop; then a run says how to
install verl; a dry run still shows the verl keys ttrl would set.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(importlib.util.find_spec("verl") is not None, reason="verl is installed here")

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "verl" / "aime2024-qwen2.5-math-1.5b.yaml"


def write(tmp_path: Path, verl: str) -> Path:
    (tmp_path / "p.json").write_text(json.dumps([{"prompt": "What is 1+1?", "answer": "2"}]), encoding="utf-8")
    path = tmp_path / "run.yaml"
    path.write_text(f"trainer: verl\nestimator:\n  name: majority_vote\nverl:\n  model: m\n  train_files: p.json\n{verl}")
    return path


def test_config_mistakes_come_before_verl_is_not_installed(run_ttrl, tmp_path):
    path = write(tmp_path, "  n_votes: 4\n  n_train: 8\n")
    result = run_ttrl("train", "--config", str(path))
    assert result.returncode == 2 and f"must not exceed n_votes (4) ({path}:8)" in result.stderr
    assert "not installed" not in result.stderr


def test_a_run_without_verl_says_how_to_install_it(run_ttrl, tmp_path):
    result = run_ttrl("train", "--config", str(write(tmp_path, "")))
    assert result.returncode == 2 and "pip install 'ttrl[verl]'" in result.stderr and "Traceback" not in result.stderr


def test_dry_run_without_verl_lists_the_keys_ttrl_sets(run_ttrl, shared_data):
    result = run_ttrl("train", "--config", str(EXAMPLE), "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "verl: not installed" in result.stdout
    assert 'trainer.v1.trainer_mode: "ttrl"' in result.stdout and "actor_rollout_ref.rollout.n: 64" in result.stdout

"""Run configs: two-phase validation, errors that name the estimator, option, type, value and line."""

from __future__ import annotations

import pytest

from ttrl.core.config import load_run_config
from ttrl.core.errors import OptionError, UnknownNameError, UserError
from ttrl.core.estimation import EstimationPipeline
from ttrl.core.plugins import load_plugins


@pytest.fixture(scope="module")
def registry():
    return load_plugins(entry_points=False, warn=False).registry


def write(tmp_path, text):
    path = tmp_path / "run.yaml"
    path.write_text(text)
    return path


def test_a_valid_config_resolves_name_and_options(tmp_path, registry):
    config = load_run_config(write(tmp_path, "estimator:\n  name: self-certainty\n"))
    pipeline = EstimationPipeline.from_config(config, registry)
    assert pipeline.estimator.name == "self_certainty"


def test_unknown_estimator_suggests_and_lists(tmp_path, registry):
    config = load_run_config(write(tmp_path, "estimator:\n  name: majorty_vote\n"))
    with pytest.raises(UnknownNameError) as excinfo:
        EstimationPipeline.from_config(config, registry)
    message = str(excinfo.value)
    assert "Unknown estimator 'majorty_vote'. Did you mean: majority_vote" in message
    assert "Available: " in message and "dare" in message


def test_bad_option_type_names_estimator_option_type_value_and_line(tmp_path, registry):
    path = write(tmp_path, "# DARE with a typo\nestimator:\n  name: dare\n  options:\n    alpha: lots\n")
    config = load_run_config(path)
    with pytest.raises(OptionError) as excinfo:
        EstimationPipeline.from_config(config, registry)
    message = str(excinfo.value)
    assert "'dare'" in message and "'alpha'" in message and "float" in message and "'lots'" in message
    assert f"{path}:5" in message


def test_unknown_option_suggests_the_close_one(tmp_path, registry):
    path = write(tmp_path, "estimator:\n  name: dare\n  options: {alhpa: 0.5}\n")
    with pytest.raises(OptionError) as excinfo:
        EstimationPipeline.from_config(load_run_config(path), registry)
    assert "has no option 'alhpa'" in str(excinfo.value) and "Did you mean 'alpha'?" in str(excinfo.value)


def test_phase_one_errors_point_at_the_line(tmp_path):
    path = write(tmp_path, "estimator:\n  name: dare\nestimater_typo: 1\n")
    with pytest.raises(UserError) as excinfo:
        load_run_config(path)
    assert "estimater_typo is not a known setting" in str(excinfo.value) and f"{path}:3" in str(excinfo.value)


@pytest.mark.parametrize("text, fragment", [
    ("estimator: [unclosed\n", "is not valid YAML"),
    ("- just\n- a list\n", "must be a YAML mapping"),
])
def test_unreadable_configs(tmp_path, text, fragment):
    with pytest.raises(UserError, match=fragment):
        load_run_config(write(tmp_path, text))


def test_missing_config_file(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_run_config(tmp_path / "nope.yaml")


def test_cli_config_error_exits_2_without_traceback(run_ttrl, tmp_path, repo_root):
    path = write(tmp_path, "estimator:\n  name: dare\n  options: {tau: high}\n")
    result = run_ttrl("estimate", "--data", str(repo_root / "examples/rollouts/tiny.jsonl"), "--config", str(path),
                      "--output", str(tmp_path / "out.jsonl"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "'tau'" in result.stderr and f"{path}:3" in result.stderr
    debug = run_ttrl("estimate", "--data", str(repo_root / "examples/rollouts/tiny.jsonl"), "--config", str(path),
                     "--output", str(tmp_path / "out.jsonl"), env={"TTRL_DEBUG": "1"})
    assert debug.returncode == 2 and "Traceback" in debug.stderr

"""`ttrl train` with `trainer: trl`: the bad inputs are refused before anything heavy starts.

Every case goes through the real CLI with `--dry-run`, which validates everything and loads no model.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from ttrl.adapters.trl.settings import check_trl_version, prepare
from ttrl.cli import main
from ttrl.core.config import load_run_config
from ttrl.core.data import Estimate
from ttrl.core.errors import OptionError, UserError
from ttrl.core.hookspecs import hookimpl
from ttrl.core.plugins import load_plugins

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "trl"

BASE = """\
trainer: trl
estimator:
  name: {name}
  options: {options}
trl:
  num_generations: 4
  prompts_per_step: 2
  max_steps: 1
  max_completion_length: 16
{extra}"""


def write(tmp_path: Path, name: str = "majority_vote", options: str = "{}", extra: str = "") -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(BASE.format(name=name, options=options, extra=textwrap.indent(extra, "  ")), encoding="utf-8")
    return path


def train(path: Path, capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--config", str(path), "--dry-run"])
        raise SystemExit(0)
    out = capsys.readouterr()
    return exit_info.value.code, out.out, out.err


def test_dry_run_prints_the_trl_configuration_and_the_estimator(tmp_path, capsys):
    code, out, _ = train(write(tmp_path, options="{n_train: 3}", extra="learning_rate: 1.0e-5\ntemperature: 0.7\n"), capsys)
    assert code == 0
    shown = json.loads(out)
    assert shown["estimator"]["name"] == "majority_vote"
    assert shown["estimator"]["options"]["n_train"] == 3
    grpo = shown["grpo_config"]
    # one generation batch per step: 2 prompts x 4 generations
    assert grpo["num_generations"] == 4 and grpo["per_device_train_batch_size"] == 8
    assert grpo["learning_rate"] == 1e-5 and grpo["temperature"] == 0.7 and grpo["max_completion_length"] == 16
    # the TTRL paper's defaults where the config says nothing
    assert grpo["lr_scheduler_type"] == "cosine" and grpo["beta"] == 0.0


@pytest.mark.parametrize(
    ("example", "requires"), [("majority_vote.yaml", ["answers"]), ("self_certainty.yaml", ["mean_self_certainty"])]
)
def test_the_shipped_examples_validate(example, requires, capsys):
    code, out, _ = train(EXAMPLES / example, capsys)
    assert code == 0
    assert json.loads(out)["estimator"]["requires"] == requires


def test_unknown_estimator_suggests_the_close_name(tmp_path, capsys):
    code, _, err = train(write(tmp_path, name="majority_vot"), capsys)
    assert code == 2
    assert "majority_vote" in err and "Traceback" not in err


def test_n_train_above_the_number_of_votes_points_at_the_option(tmp_path, capsys):
    path = write(tmp_path, options="{n_train: 5}")
    code, _, err = train(path, capsys)
    assert code == 2
    assert "n_train=5" in err and "num_generations=4" in err
    assert f"{path}:4" in err  # the `options:` line


def test_trl_n_train_above_num_generations_points_at_its_line(tmp_path, capsys):
    path = write(tmp_path, extra="n_train: 6\n")
    code, _, err = train(path, capsys)
    assert code == 2
    assert "trl.n_train (6)" in err and "num_generations (4)" in err and f"{path}:10" in err


def test_trl_n_train_is_handed_to_the_estimator_and_must_not_contradict_it(tmp_path, capsys):
    code, out, _ = train(write(tmp_path, extra="n_train: 3\n"), capsys)
    assert code == 0
    assert json.loads(out)["estimator"]["options"]["n_train"] == 3
    code, _, err = train(write(tmp_path, options="{n_train: 2}", extra="n_train: 3\n"), capsys)
    assert code == 2
    assert "estimator.options.n_train is 2 but trl.n_train is 3" in err


def test_an_unknown_trl_setting_points_at_its_line(tmp_path, capsys):
    path = write(tmp_path, extra="num_generation: 8\n")
    code, _, err = train(path, capsys)
    assert code == 2
    assert "trl.num_generation is not a known setting" in err and f"{path}:10" in err


def test_an_unknown_grpo_arg_is_refused_with_a_suggestion(tmp_path, capsys):
    code, _, err = train(write(tmp_path, extra="grpo_args: {los_type: dr_grpo}\n"), capsys)
    assert code == 2
    assert "trl.grpo_args.los_type" in err and "'loss_type'" in err


def test_trl_outside_the_supported_range_is_refused():
    assert check_trl_version("1.16.0") == "1.16.0"
    for version in ("0.19.1", "2.0.0"):
        with pytest.raises(UserError, match=f"trl {version} is installed, but the TRL adapter supports trl>=1.0,<2.0"):
            check_trl_version(version)
    with pytest.raises(UserError, match="needs the trl package"):
        check_trl_version(None)


class NeedsHiddenStates:
    """A plugin whose estimator needs an input the TRL adapter does not compute."""

    @hookimpl
    def register_estimators(self, register):
        register("probe", lambda group, options: Estimate([0.0] * len(group.rollouts)), requires=("hidden_states",))


def test_an_estimator_needing_statistics_the_adapter_cannot_compute_is_refused(tmp_path):
    registry = load_plugins(entry_points=False, extra=[("probe", NeedsHiddenStates())]).registry
    path = write(tmp_path, name="probe")
    with pytest.raises(OptionError, match=r"needs hidden_states, which the TRL adapter cannot provide"):
        prepare(load_run_config(path), registry, config_path=path, trl_version="1.16.0")


def test_token_statistics_estimators_are_accepted(tmp_path):
    registry = load_plugins(entry_points=False).registry
    for name in ("self_certainty", "entropy", "dare"):
        path = write(tmp_path, name=name)
        run = prepare(load_run_config(path), registry, config_path=path, trl_version="1.16.0")
        assert run.pipeline.requires - {"answers"}


def test_output_dir_is_read_relative_to_the_config(tmp_path, monkeypatch):
    monkeypatch.chdir("/")
    path = write(tmp_path, extra="output_dir: runs/here\n")
    run = prepare(load_run_config(path), load_plugins(entry_points=False).registry, config_path=path, trl_version="1.16.0")
    assert run.settings.output_dir == str((tmp_path / "runs" / "here").resolve())
    assert run.grpo_kwargs["output_dir"] == run.settings.output_dir

"""The OpenRLHF adapter without Ray: group estimation, run-config checks, dry runs and reward files.

The reward-file test loads the generated file with OpenRLHF's own ``SingleTurnAgentExecutor`` (the code
that runs ``--reward.remote_url file.py`` inside a vLLM rollout actor); it needs no shim.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
from pathlib import Path

import pytest

from ttrl.adapters.openrlhf import launch, plan
from ttrl.adapters.openrlhf.binding import select_training_samples
from ttrl.adapters.openrlhf.reward_file import response_text, write_reward_file
from ttrl.adapters.openrlhf.settings import known_flags
from ttrl.core.config import ComponentSpec, RunConfig, load_run_config
from ttrl.core.errors import UserError
from ttrl.core.groups import GroupEstimator, Response
from ttrl.core.plugins import load_plugins

REPO_ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = REPO_ROOT / "examples" / "openrlhf"


@pytest.fixture(scope="module")
def registry():
    return load_plugins(entry_points=False).registry


def estimator_for(registry, name, n_votes, n_train, options=None) -> GroupEstimator:
    config = RunConfig(estimator=ComponentSpec(name=name, options=options or {}))
    return GroupEstimator.from_config(config, registry, n_votes=n_votes, n_train=n_train, section="openrlhf")


def write_config(tmp_path: Path, text: str) -> Path:
    (tmp_path / "prompts.json").write_text('[{"prompt": "What is 2+3?", "answer": "5"}]', encoding="utf-8")
    path = tmp_path / "run.yaml"
    path.write_text(text, encoding="utf-8")
    return path


BASE = """\
trainer: openrlhf
estimator:
  name: {name}
openrlhf:
  model: Qwen/Qwen2.5-Math-1.5B
  prompt_data: prompts.json
  output_dir: {out}
"""


# ── the framework-free half of the patched make_experience_batch ──────────────────────────────────


def test_majority_vote_over_four_keeps_two_per_prompt_with_the_estimators_rewards(registry):
    groups = estimator_for(registry, "majority_vote", n_votes=4, n_train=2)
    texts = ["so \\boxed{5}", "I get \\boxed{6}", "answer: \\boxed{5}", "\\boxed{5}.",
             "\\boxed{8}", "\\boxed{7}", "\\boxed{8}", "\\boxed{8}"]
    prompts = ["What is 2+3?"] * 4 + ["What is 3+4?"] * 4
    selection = select_training_samples(
        groups, [f"p{i // 4}" for i in range(8)], prompts, ["5"] * 4 + ["7"] * 4, [Response(t) for t in texts]
    )
    # TTRL's reference code trains on the first n_train; the label never becomes a reward
    assert selection.kept == [0, 1, 4, 5]
    assert selection.rewards == [1.0, 0.0, 1.0, 0.0] and selection.trained == [True] * 4
    assert selection.metrics["label_accuracy"] == 0.5  # right on 2+3, wrong on 3+4
    assert selection.metrics["trained_reward_accuracy"] == 0.5  # 2/2 trained rewards right, then 0/2
    assert selection.metrics["groups"] == 2.0 and selection.metrics["failed_groups"] == 0.0


def test_a_filtered_group_keeps_its_batch_slots_but_is_not_trained_on(registry):
    groups = estimator_for(registry, "majority_vote", n_votes=4, n_train=2, options={"min_majority_ratio": 0.6})
    selection = select_training_samples(
        groups, ["p"] * 4, ["q"] * 4, [None] * 4, [Response(t) for t in ["1", "2", "3", "1"]]
    )
    assert selection.kept == [0, 1] and selection.trained == [False, False] and selection.rewards == [0.0, 0.0]
    assert selection.metrics["filtered_groups"] == 1.0


# ── fail early: all of these raise before Ray or a GPU is touched ─────────────────────────────────


def test_unknown_estimator_is_refused_with_a_suggestion(tmp_path):
    path = write_config(tmp_path, BASE.format(name="majority_vot", out=tmp_path / "out"))
    with pytest.raises(UserError, match="majority_vote"):
        plan(load_run_config(path), config_path=path)


def test_n_train_above_n_votes_points_at_the_config_line(tmp_path):
    path = write_config(tmp_path, BASE.format(name="majority_vote", out=tmp_path / "out") + "  n_votes: 8\n  n_train: 16\n")
    with pytest.raises(UserError, match=r"openrlhf.n_train \(16\) must not exceed openrlhf.n_votes \(8\) \(.*run.yaml:9\)"):
        plan(load_run_config(path), config_path=path)


def test_stats_estimator_without_token_statistics_is_refused(tmp_path):
    path = write_config(tmp_path, BASE.format(name="self-certainty", out=tmp_path / "out") + "  token_stats: none\n")
    with pytest.raises(UserError, match=r"needs token statistics \(mean_self_certainty\).*run.yaml:8"):
        plan(load_run_config(path), config_path=path)


def test_stats_estimator_with_packed_sequences_is_refused(tmp_path):
    text = BASE.format(name="entropy", out=tmp_path / "out") + "  flags:\n    ds.packing_samples: true\n"
    path = write_config(tmp_path, text)
    with pytest.raises(UserError, match="packing_samples"):
        plan(load_run_config(path), config_path=path)


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        ("rollout.n_samples_per_prompt: 8", "set by ttrl from `openrlhf.n_votes`"),
        ("algo.dynamic_filtering_enable: true", "leak labels"),
        ("actor.adam.lrr: 1.0e-6", "Did you mean 'actor.adam.lr'"),
    ],
)
def test_flags_that_contradict_ttrl_or_do_not_exist_are_refused(tmp_path, flag, message):
    path = write_config(tmp_path, BASE.format(name="majority_vote", out=tmp_path / "out") + f"  flags:\n    {flag}\n")
    with pytest.raises(UserError, match=message):
        plan(load_run_config(path), config_path=path)


def test_too_few_trained_responses_for_the_gpus_is_refused(tmp_path):
    text = BASE.format(name="majority_vote", out=tmp_path / "out") + (
        "  n_votes: 4\n  n_train: 2\n  gpus_per_node: 8\n  flags:\n    rollout.batch_size: 2\n"
    )
    path = write_config(tmp_path, text)
    with pytest.raises(UserError, match="make 2 micro-batches of 2, fewer than the 8 actor GPUs"):
        plan(load_run_config(path), config_path=path)


def test_missing_prompt_file_is_refused(tmp_path):
    path = write_config(tmp_path, BASE.format(name="majority_vote", out=tmp_path / "out").replace("prompts.json", "nope.json"))
    with pytest.raises(UserError, match=r"nope.json does not exist \(.*run.yaml:6\)"):
        plan(load_run_config(path), config_path=path)


def test_estimator_n_train_must_agree_with_the_adapter(tmp_path):
    text = BASE.format(name="majority_vote", out=tmp_path / "out").replace(
        "  name: majority_vote\n", "  name: majority_vote\n  options: {n_train: 8}\n"
    )
    path = write_config(tmp_path, text)
    with pytest.raises(UserError, match="estimator.options.n_train is 8 but openrlhf.n_train is 32"):
        plan(load_run_config(path), config_path=path)


def test_unsupported_openrlhf_version_is_refused(tmp_path, monkeypatch):
    path = write_config(tmp_path, BASE.format(name="majority_vote", out=tmp_path / "out"))
    real_version = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "0.12.0" if name == "openrlhf" else real_version(name))
    with pytest.raises(UserError, match=r"OpenRLHF 0.12.0 is installed, but ttrl's adapter is tested with OpenRLHF 0.11.2"):
        launch(load_run_config(path), config_path=path, dry_run=True)


def test_the_trainer_process_checks_the_version_too(monkeypatch):
    from ttrl.adapters.openrlhf import binding

    real_version = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "0.11.3" if name == "openrlhf" else real_version(name))
    monkeypatch.setattr(binding, "_SPEC", None)
    with pytest.raises(UserError, match="OpenRLHF 0.11.3 is installed"):
        binding.install({"run": {}, "n_votes": 2, "n_train": 2, "token_stats": False, "temperature": 1.0})
    assert binding._SPEC is None  # nothing was patched


def test_config_errors_are_reported_before_environment_errors(tmp_path, monkeypatch):
    path = write_config(tmp_path, BASE.format(name="majority_vot", out=tmp_path / "out"))

    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    with pytest.raises(UserError, match="Unknown estimator 'majority_vot'"):
        launch(load_run_config(path), config_path=path, dry_run=False)


def test_output_dir_is_read_relative_to_the_config_like_the_data(tmp_path, monkeypatch):
    monkeypatch.chdir("/")
    path = write_config(tmp_path, BASE.format(name="majority_vote", out="runs/out"))
    _spec, command, output = plan(load_run_config(path), config_path=path)
    assert output == (tmp_path / "runs" / "out").resolve()
    assert str(output / "ckpt") in command


def test_checkpoints_are_periodic_bounded_and_never_chosen_by_labels(tmp_path):
    path = write_config(tmp_path, BASE.format(name="majority_vote", out=tmp_path / "out"))
    _spec, command, _output = plan(load_run_config(path), config_path=path)
    flags = " ".join(command)
    assert "--ckpt.save_steps 1 " in flags and "--ckpt.max_num 3 " in flags
    assert "--ckpt.best_metric_key none" in flags  # no "best" checkpoint picked by eval (= training) labels
    assert "--ckpt.save_hf" not in flags  # no HF copy per checkpoint; OpenRLHF saves the final model once
    chosen = write_config(tmp_path, BASE.format(name="majority_vote", out=tmp_path / "out")
                          + "  best_checkpoint_metric: eval_default_pass1\n")
    assert "--ckpt.best_metric_key eval_default_pass1" in " ".join(plan(load_run_config(chosen), config_path=chosen)[1])


# ── dry runs ──────────────────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.yaml")))
def test_example_configs_dry_run_with_the_papers_settings(name, capsys, shared_data):
    path = EXAMPLES / name
    assert launch(load_run_config(path), config_path=path, dry_run=True) == 0
    out = capsys.readouterr().out
    for expected in (
        "--rollout.n_samples_per_prompt 64",
        "--algo.advantage.estimator group_norm",
        "--actor.adam.lr 5e-07",
        "--actor.lr_scheduler cosine",
        "--rollout.temperature 1.0",
        "--eval.temperature 0.6",
        "--rollout.max_new_tokens 3072",
        "--reward.remote_url",
        # TTRL's code: one update per prompt's 32 trained responses, KL loss 0.001 against a reference model
        "--train.batch_size 32",
        "--algo.kl.use_loss",
        "--algo.kl.init_coef 0.001",
        "--eval.steps 2",
        "--ckpt.best_metric_key none",
    ):
        assert expected in out, expected
    assert '"n_train": 32' in out and '"eval_top_p": 0.95' in out and "Qwen/Qwen2.5-Math-" in out
    openrlhf_part = out.split("\n    -- \\\n", 1)[1]  # after the launcher's own --ttrl-spec
    flags = {line.split()[0][2:] for line in openrlhf_part.splitlines() if line.strip().startswith("--")}
    assert flags and flags <= known_flags()  # every flag exists in OpenRLHF 0.11's entry point
    spec, _command, output = plan(load_run_config(path), config_path=path)
    assert not output.exists()  # a dry run writes nothing


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.yaml")))
def test_every_value_in_the_example_configs_says_where_it_comes_from(name):
    unexplained = []
    section = None
    for line in (EXAMPLES / name).read_text(encoding="utf-8").splitlines():
        if line and not line.startswith((" ", "#")):
            section = line.split(":")[0]
        key, _, value = line.strip().partition(":")
        if section == "openrlhf" and line.startswith("  ") and value.strip() and "#" not in line:
            if key not in {"model", "input_key", "num_nodes", "output_dir"}:
                unexplained.append(line.strip())
    assert unexplained == []


@pytest.mark.parametrize("gpus", ["1", "8"])
def test_gpu_end_to_end_script_dry_run_prints_the_command(tmp_path, shared_data, gpus):
    import os
    import subprocess
    import sys

    env = {**os.environ, "OUT": str(tmp_path / "e2e"), "ESTIMATOR": "self-certainty", "GPUS": gpus,
           "TTRL": str(Path(sys.executable).with_name("ttrl"))}
    proc = subprocess.run(
        ["bash", str(EXAMPLES / "gpu_end_to_end.sh"), "--dry-run"], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    assert "--rollout.n_samples_per_prompt 8" in proc.stdout and '"token_stats": true' in proc.stdout
    assert f"--actor.num_gpus_per_node {gpus}" in proc.stdout and f"--vllm.num_engines {gpus}" in proc.stdout
    assert sorted(p.name for p in (tmp_path / "e2e").iterdir()) == ["run.yaml"]  # nothing else written


def test_cli_dry_run_and_user_error_exit_codes(tmp_path, run_ttrl):
    path = write_config(tmp_path, BASE.format(name="entropy", out=tmp_path / "out"))
    result = run_ttrl("train", "--config", str(path), "--dry-run")
    assert result.returncode == 0, result.stderr
    assert '"token_stats": true' in result.stdout and "ttrl.adapters.openrlhf.launch" in result.stdout
    path.write_text(path.read_text() + "  n_train: 100\n")
    result = run_ttrl("train", "--config", str(path))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "openrlhf.n_train (100) must not exceed openrlhf.n_votes (64)" in result.stderr


# ── reward files for --reward.remote_url, loaded by OpenRLHF's own executor ──────────────────────


def test_generated_grader_file_runs_in_openrlhfs_single_turn_executor(tmp_path):
    from openrlhf.utils.agent import SingleTurnAgentExecutor

    config = RunConfig(estimator=ComponentSpec(name="majority_vote"))
    path = write_reward_file(tmp_path / "grader.py", config, "grader")
    executor = SingleTurnAgentExecutor(str(path))  # loads reward_func from the file, as a vLLM actor does
    prompt = "<|im_start|>user\nWhat is 2+3?<|im_end|>\n<|im_start|>assistant\n"
    right, wrong = asyncio.run(
        executor._fetch_rewards_via_func(
            [prompt + "It is \\boxed{5}<|im_end|>", prompt + "It is \\boxed{6}<|im_end|>"],
            [prompt, prompt],
            ["5", "5"],
        )
    )
    # the grade is a score, never a training reward: an OpenRLHF trainer without ttrl's patch gets none
    assert right == {"rewards": None, "scores": 1.0, "extra_logs": {"ground_truth_reward": 1.0}}
    assert wrong == {"rewards": None, "scores": 0.0, "extra_logs": {"ground_truth_reward": 0.0}}
    assert response_text(prompt + "x", prompt) == "x"


PER_SAMPLE_SCRIPT = """
import asyncio, sys
from pathlib import Path
from openrlhf.utils.agent import SingleTurnAgentExecutor
from ttrl.adapters.openrlhf.reward_file import write_reward_file
from ttrl.core.config import ComponentSpec, RunConfig

for p in (1.0, 0.0):
    spec = ComponentSpec(name="random", options={"p": p})
    path = write_reward_file(Path(sys.argv[1]) / f"random{int(p)}.py", RunConfig(estimator=spec), "estimator")
    executor = SingleTurnAgentExecutor(str(path))
    out = asyncio.run(executor._fetch_rewards_via_func(["Q: 2+3? A: \\\\boxed{5}"], ["Q: 2+3? A:"], ["5"]))
    print("RESULT", p, out[0]["rewards"], out[0]["scores"])
"""


def test_per_sample_reward_file_runs_a_group_free_estimator_from_a_plugin(tmp_path, example_plugins_dir):
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(example_plugins_dir), "HF_HUB_OFFLINE": "1"}
    env = {k: v for k, v in env.items() if not k.startswith("TTRL_")}
    proc = subprocess.run(
        [sys.executable, "-c", PER_SAMPLE_SCRIPT, str(tmp_path)], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    # the estimator's reward (random with p=1 / p=0), and the ground-truth score beside it
    results = [line for line in proc.stdout.splitlines() if line.startswith("RESULT")]
    assert results == ["RESULT 1.0 1.0 1.0", "RESULT 0.0 0.0 1.0"]


def test_per_sample_reward_file_refuses_group_and_stats_estimators(tmp_path):
    for name in ("majority_vote", "entropy"):
        with pytest.raises(UserError, match="reward_func"):
            write_reward_file(tmp_path / "r.py", RunConfig(estimator=ComponentSpec(name=name)), "estimator")

"""``ttrl study``: the machinery of the CPU study (its --quick form), resuming, refusals, and its parts.

The quick run trains every arm of examples/study/cpu.yaml for 2 steps with the real SmolLM2-135M and
TRL, and evaluates on 4 held-out problems: it checks what is produced, not what the numbers are.
"""

from __future__ import annotations

import json
import os
import textwrap

import pytest

from ttrl.study import _majority_correct, bootstrap_interval, split_problems, StudySettings

STUDY = "examples/study/cpu.yaml"


@pytest.mark.model
@pytest.mark.slow
def test_quick_study_trains_every_arm_evaluates_and_resumes(run_ttrl, repo_root, tmp_path):
    pytest.importorskip("trl")
    out = tmp_path / "study"
    result = run_ttrl("study", "--config", str(repo_root / STUDY), "--quick", "--out", str(out), timeout=900)
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "study.json").read_text())
    runs = summary["runs"]
    assert list(runs) == ["ttrl-seed0", "ttrl-seed1", "ground-truth-seed0", "ground-truth-seed1", "random-seed0",
                          "self-certainty-seed0"]
    for name, run in runs.items():
        assert len(run["steps"]) == 2, name
        for step in run["steps"]:
            assert step["majority_ratio"] is not None and step["entropy"] is not None and step["response_length"] > 0
        assert len(run["avg"]) == len(run["maj"]) == 4
        assert all(0 <= v <= 1 for v in run["avg"])
    # label-based curves exist where a label exists; the ceiling's reward is the reference itself
    assert runs["ttrl-seed0"]["steps"][0]["label_accuracy"] is not None
    assert all(s["reward_accuracy"] == 1.0 for s in runs["ground-truth-seed0"]["steps"])
    assert runs["random-seed0"]["steps"][0]["label_accuracy"] is None
    rows = {row["run"]: row for row in summary["table"]}
    assert set(rows) == {"untrained", *runs}
    for name in runs:
        lo, hi = rows[name]["avg@k_change_ci"]
        assert lo <= rows[name]["avg@k_change"] <= hi
    assert (out / "curves.png").stat().st_size > 1000 and (out / "heldout.png").stat().st_size > 1000
    assert "| ttrl-seed0 |" in (out / "study.md").read_text() and "| ttrl-seed0 |" in result.stdout

    # the same command again: every run is read back, none is trained again
    stamps = {p.name: p.stat().st_mtime_ns for p in (out / "runs").iterdir()}
    again = run_ttrl("study", "--config", str(repo_root / STUDY), "--quick", "--out", str(out), timeout=300)
    assert again.returncode == 0, again.stderr
    assert again.stderr.count("done earlier") == len(runs)
    assert {p.name: p.stat().st_mtime_ns for p in (out / "runs").iterdir()} == stamps

    # the full study into the same folder would mix two configs' results
    mixed = run_ttrl("study", "--config", str(repo_root / STUDY), "--out", str(out), timeout=300)
    assert mixed.returncode == 2
    assert "different study config" in mixed.stderr and "Traceback" not in mixed.stderr


def _config(tmp_path, study: str, trainer: str = "trl") -> str:
    path = tmp_path / "study.yaml"
    path.write_text(textwrap.dedent(f"""\
        trainer: {trainer}
        answers: {{task: number}}
        trl: {{max_steps: 1, num_generations: 2}}
        study:
        """) + textwrap.indent(textwrap.dedent(study), "  "))
    return str(path)


@pytest.mark.parametrize(
    ("study", "expected"),
    [
        ("arms: [{name: a, estimator: majority_vote, seed: [0]}]\n", "study.arms.0.seed is not a known setting (did you mean: seeds?)"),
        ("arms: [{name: a}]\n", "needs `estimator:`"),
        ("arms: [{name: a, reward: none, estimator: majority_vote}]\n", "takes no estimator"),
        ("arms: [{name: a, estimator: majority_vote}, {name: a, reward: none}]\n", "arm names must be distinct"),
        ("arms: [{name: a, estimator: majorty_vote}]\n", "majority_vote"),
        ("arms: [{name: a, estimator: majority_vote}]\nheldout: 0\n", "study.heldout"),
    ],
)
def test_config_mistakes_are_reported_with_their_line(run_ttrl, tmp_path, study, expected):
    result = run_ttrl("study", "--config", _config(tmp_path, study), "--out", str(tmp_path / "out"))
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    if "is not a known setting" in expected or "study.heldout" in expected:
        assert "study.yaml:" in result.stderr


def test_a_study_trains_through_trl(run_ttrl, tmp_path):
    result = run_ttrl("study", "--config", _config(tmp_path, "arms: [{name: a, reward: none}]\n", trainer="verl"),
                      "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and "trainer: trl" in result.stderr and "study.yaml:1" in result.stderr


def test_heldout_problems_are_disjoint_from_training_problems():
    settings = StudySettings.model_validate({"arms": [{"name": "a", "reward": "none"}], "heldout": 50, "levels": [1]})
    train, heldout = split_problems(settings, 120)
    assert len(train) == 120 and len(heldout) == 50
    assert not {p.prompt for p in train} & {p.prompt for p in heldout}
    assert split_problems(settings, 120)[1] == heldout  # deterministic


class _Exact:
    task_override = None

    @staticmethod
    def equivalent(a, b, task):
        return a is not None and b is not None and float(a) == float(b)


def test_majority_at_k_takes_the_largest_answer_class():
    engine = _Exact()
    answers = ["3", "3.0", "4", None]
    assert _majority_correct(engine, "number", answers, [True, True, False, False])
    assert not _majority_correct(engine, "number", ["4", "3", "4", None], [False, True, False, False])
    assert not _majority_correct(engine, "number", [None, None], [False, False])


def test_bootstrap_interval_covers_the_mean_and_pairs_problems():
    values = [1.0, 0.0] * 50
    lo, hi = bootstrap_interval(values, 500, seed=0)
    assert lo < 0.5 < hi and hi - lo < 0.3
    # the same problems before and after: a paired difference of exactly +1 on every problem has no spread
    assert bootstrap_interval([1.0] * 10, 100, seed=0, paired=[0.0] * 10) == [1.0, 1.0]


@pytest.mark.model
def test_shared_prompt_sampler_matches_generate(tmp_path):
    """The evaluation's sampler (one prompt pass shared by k samples) at a temperature near 0 is greedy
    decoding: it must produce what transformers' own generate produces."""
    torch = pytest.importorskip("torch")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from ttrl.models import load_causal_lm
    from ttrl.study import sample_completions

    model, tokenizer, _ = load_causal_lm("smollm2-135m")
    prompts = [tokenizer.apply_chat_template([{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True)
               for q in ("What is 4 + 5? Answer with a number.", "Ana has 3 shells and gets 2 more. How many shells does Ana have now?")]
    got = sample_completions(model, tokenizer, prompts, k=2, temperature=1e-4, max_new_tokens=12, seed=0, batch=2)
    tokenizer.padding_side = "left"
    enc = tokenizer(text=prompts, return_tensors="pt", padding=True)
    with torch.no_grad():
        ids = model.generate(**enc, max_new_tokens=12, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    expected = tokenizer.batch_decode(ids[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    assert [samples[0] for samples in got] == expected
    assert [samples[1] for samples in got] == expected

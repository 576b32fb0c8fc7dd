"""`ttrl bench`: metrics against hand-computed values, the result JSON's shape, spec selection,
the built-in set, the simulation's knobs and the report.

The small file below is worked by hand (majority vote, pre-extracted answers):

group ``a`` (reference 3): answers 3,3,2,2,2,none. Label "2" (3 of 6) is wrong; rewards 0,0,1,1,1,0
  against truth 1,1,0,0,0,0: reward accuracy 1/6; the 2 correct x 4 incorrect pairs win 0 and tie
  2 (both rewards 0) -> 1 win of 8; ground-truth ratio 2/6; majority ratio 3/6.
group ``b`` (reference 7): answers 7,7,7,5. Label "7" is right; rewards equal truth (reward accuracy 1);
  3 pairs, all won; ground-truth ratio 3/4; majority ratio 3/4.
group ``c`` has no reference: estimators run on it but it is not scored.

Dataset: label accuracy 1/2, reward accuracy (1/6 + 1)/2 = 7/12, majority ratio (1/2 + 3/4)/2 = 5/8,
pairwise accuracy pooled (1 + 3)/(8 + 3) = 4/11, ground-truth ratio (1/3 + 3/4)/2 = 13/24, pass@N 1.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from ttrl.core.config import ComponentSpec, RunConfig
from ttrl.core.plugins import load_plugins
from ttrl.harness.builtin import builtin_dataset
from ttrl.harness.plan import BenchPlan
from ttrl.harness.runner import run_bench
from ttrl.harness.simulate import SimulationSettings, parse_sweep, simulate
from ttrl.harness.sources import simulated_dataset

METRIC_KEYS = {"label_accuracy", "reward_accuracy", "majority_ratio", "pairwise_accuracy",
               "ground_truth_ratio", "pass_at_n", "seconds", "rollouts_per_second"}


def group(gid: str, answers: list[str | None], reference: str | None, entropies: list[float] | None = None) -> dict:
    rollouts = []
    for i, a in enumerate(answers):
        r = {"text": "no idea" if a is None else f"so the answer is $\\boxed{{{a}}}$"}
        if entropies is not None:
            r["stats"] = {"mean_entropy": entropies[i], "num_tokens": 10}
        rollouts.append(r)
    line = {"id": gid, "prompt": f"problem {gid}", "rollouts": rollouts}
    if reference is not None:
        line["reference"] = reference
    return line


@pytest.fixture
def small_file(tmp_path) -> Path:
    path = tmp_path / "small.jsonl"
    lines = [
        group("a", ["3", "3", "2", "2", "2", None], "3"),
        group("b", ["7", "7", "7", "5"], "7"),
        group("c", ["1", "1"], None),
    ]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


def test_metrics_match_hand_computed_values(small_file, tmp_path, run_ttrl):
    out = tmp_path / "results.json"
    result = run_ttrl("bench", "--data", str(small_file), "--estimators", "majority_vote", "--output", str(out))
    assert result.returncode == 0, result.stderr
    results = json.loads(out.read_text())
    assert results["data"] == {"path": str(small_file), "groups": 3, "rollouts": 12}
    (mv,) = results["estimators"]
    m = mv["metrics"]
    assert m["label_accuracy"] == pytest.approx(1 / 2)
    assert m["reward_accuracy"] == pytest.approx(7 / 12)
    assert m["majority_ratio"] == pytest.approx(5 / 8)
    assert m["pairwise_accuracy"] == pytest.approx(4 / 11)
    assert m["ground_truth_ratio"] == pytest.approx(13 / 24)
    assert m["pass_at_n"] == 1.0
    assert m["seconds"] > 0
    assert m["rollouts_per_second"] == pytest.approx(12 / m["seconds"])
    # the table names the estimator and shows the hand-computed pairwise accuracy (4/11 = 0.364)
    assert "majority_vote" in result.stdout and "0.364" in result.stdout
    assert not (tmp_path / "results.json.partial.jsonl").exists()


def test_result_json_has_exactly_the_contract_keys(small_file, tmp_path, run_ttrl):
    out = tmp_path / "results.json"
    assert run_ttrl("bench", "--data", str(small_file), "--estimators", "majority_vote,entropy",
                    "--output", str(out)).returncode == 0
    results = json.loads(out.read_text())
    assert set(results) == {"data", "estimators", "harness"}  # harness: how it ran (timings, executor)
    assert set(results["data"]) == {"path", "groups", "rollouts"}
    for entry in results["estimators"]:
        assert {"name", "options", "metrics"} <= set(entry)
        assert set(entry) - {"name", "options", "metrics"} == {"label", "skipped", "errors", "failed_groups"}
        assert set(entry["metrics"]) == METRIC_KEYS
    mv, entropy = results["estimators"]
    assert mv["name"] == "majority_vote" and mv["options"]["min_majority_ratio"] == 0.0


def test_estimator_missing_its_inputs_is_skipped_with_the_reason(small_file, tmp_path, run_ttrl):
    out = tmp_path / "results.json"
    result = run_ttrl("bench", "--data", str(small_file), "--estimators", "majority_vote,entropy", "--output", str(out))
    assert result.returncode == 0, result.stderr
    mv, entropy = json.loads(out.read_text())["estimators"]
    assert entropy["skipped"].startswith("skipped: 3 of 3 group(s) lack its inputs")
    assert "stats.mean_entropy" in entropy["skipped"]
    assert all(v is None for v in entropy["metrics"].values())
    assert mv["metrics"]["label_accuracy"] == pytest.approx(0.5)
    assert "entropy: skipped" in result.stderr


def test_one_estimator_under_two_option_sets_with_labels(small_file, tmp_path, run_ttrl):
    config = tmp_path / "run.yaml"
    config.write_text(
        "estimators:\n"
        "  - {name: majority_vote, label: vote}\n"
        "  - {name: majority_vote, label: vote-confident, options: {min_majority_ratio: 0.6}}\n"
        "  - {name: entropy, label: rent}\n"
    )
    out = tmp_path / "results.json"
    # --estimators picks by estimator name (both majority_vote specs) and by label
    result = run_ttrl("bench", "--data", str(small_file), "--config", str(config),
                      "--estimators", "majority", "--output", str(out))
    assert result.returncode == 0, result.stderr
    vote, confident = json.loads(out.read_text())["estimators"]
    assert (vote["label"], confident["label"]) == ("vote", "vote-confident")
    assert vote["name"] == confident["name"] == "majority_vote"
    # min_majority_ratio 0.6 drops group a's wrong label (ratio 1/2): label accuracy 0 + 1 over 2 groups
    # stays 1/2, but group a's rewards become all 0: reward accuracy 4/6 there, (4/6 + 1)/2 = 5/6
    assert confident["metrics"]["reward_accuracy"] == pytest.approx(5 / 6)
    assert vote["metrics"]["reward_accuracy"] == pytest.approx(7 / 12)

    twice = tmp_path / "twice.json"
    result = run_ttrl("bench", "--data", str(small_file), "--config", str(config), "--estimators", "vote,vote,rent,entropy",
                      "--output", str(twice))
    assert result.returncode == 0, result.stderr  # a spec named twice (by label or name) runs once
    assert [e["label"] for e in json.loads(twice.read_text())["estimators"]] == ["vote", "rent"]
    result = run_ttrl("bench", "--data", str(small_file), "--estimators", "majority_vote,majority,self-certainty",
                      "--output", str(twice))
    assert [e["label"] for e in json.loads(twice.read_text())["estimators"]] == ["majority_vote", "self_certainty"]
    config.write_text("estimators:\n  - {name: majority_vote}\n  - {name: majority_vote, options: {n_train: 2}}\n")
    clash = run_ttrl("bench", "--data", str(small_file), "--config", str(config))
    assert clash.returncode == 2
    assert "label 'majority_vote' appears twice" in clash.stderr and "label:" in clash.stderr
    config.write_text("estimators:\n  - {name: majority_vote}\n  - {name: majority_vote, label: x, options: {n_trian: 2}}\n")
    typo = run_ttrl("bench", "--data", str(small_file), "--config", str(config))
    assert typo.returncode == 2 and "Did you mean 'n_train'" in typo.stderr and "run.yaml:3" in typo.stderr


def test_unknown_estimator_is_a_user_error(small_file, run_ttrl):
    result = run_ttrl("bench", "--data", str(small_file), "--estimators", "majority_vot")
    assert result.returncode == 2
    assert "Unknown estimator 'majority_vot'" in result.stderr and "Did you mean" in result.stderr
    assert "Traceback" not in result.stderr


def test_without_data_the_builtin_set_is_used_and_named(tmp_path):
    missing = tmp_path / "builtin_rollouts.jsonl"
    data, _ = builtin_dataset(missing)
    assert data.path.startswith("simulation:") and "SIMULATION" in data.note
    assert len(data.records) == 200
    missing.write_text(json.dumps(group("real/1", ["4", "4"], "4")) + "\n")
    data, _ = builtin_dataset(missing)
    assert data.path == str(missing) and [r.group.id for r in data.records] == ["real/1"]
    assert "built-in rollout set" in data.note
    missing.write_text("")
    data, _ = builtin_dataset(missing)
    assert data.path.startswith("simulation:") and "builtin_rollouts.jsonl is empty" in data.note


def test_bench_without_data_says_which_set_it_ran_on(run_ttrl):
    result = run_ttrl("bench", "--estimators", "majority_vote")
    assert result.returncode == 0, result.stderr
    assert "Note: built-in rollout set" in result.stderr or "Note: No real rollouts ship" in result.stderr


def _bench_sim(specs, **knobs):
    plugins = load_plugins(entry_points=False, warn=False)
    plan = BenchPlan(specs=tuple(ComponentSpec(name=n, label=n) for n in specs), config=RunConfig().model_dump())
    return {e["label"]: e["metrics"] for e in
            run_bench(plan, simulated_dataset(SimulationSettings(**knobs)), registry=plugins.registry).results["estimators"]}


def test_simulation_is_seeded_and_its_knobs_do_what_they_say():
    a = simulate(SimulationSettings(groups=5, rollouts=4, seed=3))
    b = simulate(SimulationSettings(groups=5, rollouts=4, seed=3))
    assert [[(r.answer, r.stats) for r in x.group.rollouts] for x in a] == [[(r.answer, r.stats) for r in x.group.rollouts] for x in b]
    longer = simulate(SimulationSettings(groups=8, rollouts=4, seed=3))
    assert [x.group.rollouts[0].stats for x in longer[:5]] == [x.group.rollouts[0].stats for x in a]
    rollout = a[0].group.rollouts[0]
    assert set(rollout.stats) == {"num_tokens", "mean_entropy", "mean_self_certainty", "mean_logprob"}
    assert rollout.stats["mean_entropy"] > 0 and rollout.stats["mean_logprob"] < 0

    # confirmation collapse: rollouts copying one shared wrong answer make the majority wrong
    free = _bench_sim(["majority_vote"], groups=150, correlation=0.0)
    collapsed = _bench_sim(["majority_vote"], groups=150, correlation=0.6)
    assert collapsed["majority_vote"]["label_accuracy"] < free["majority_vote"]["label_accuracy"] - 0.3
    # entropy separates correct from incorrect rollouts until incorrect ones become confidently wrong
    honest = _bench_sim(["entropy"], groups=150, signal=2.0)
    fooled = _bench_sim(["entropy"], groups=150, signal=2.0, confident_wrong=1.0)
    assert honest["entropy"]["pairwise_accuracy"] > 0.8
    assert abs(fooled["entropy"]["pairwise_accuracy"] - 0.5) < 0.05
    # accuracy knob moves the ground-truth ratio
    assert _bench_sim(["majority_vote"], groups=150, accuracy=0.8)["majority_vote"]["ground_truth_ratio"] > 0.7


def test_sweep_spec_and_simulation_knob_errors(run_ttrl):
    assert parse_sweep("correlation=0:0.9:10") == ("correlation", [round(0.1 * i, 10) for i in range(10)])
    bad = run_ttrl("bench", "--simulate", "--sim", "corelation=0.3")
    assert bad.returncode == 2 and "corelation" in bad.stderr and "correlation" in bad.stderr
    bad = run_ttrl("bench", "--simulate", "--sweep", "groups=1:5:3")
    assert bad.returncode == 2 and "Sweepable knobs" in bad.stderr


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", head[16:24])


def test_report_has_the_table_and_three_plots(tmp_path, run_ttrl):
    report = tmp_path / "report"
    result = run_ttrl("bench", "--simulate", "--sim", "groups=60", "--estimators", "majority_vote,dare,entropy",
                      "--report", str(report))
    assert result.returncode == 0, result.stderr
    text = (report / "report.md").read_text()
    assert "| majority_vote |" in text and "| dare |" in text and "**" in text  # best values in bold
    for name in ("rewards_by_correctness.png", "label_accuracy_vs_majority_ratio.png", "pairwise_by_difficulty.png"):
        assert f"]({name})" in text
        width, height = _png_size(report / name)
        assert width > 400 and height > 300


def test_sweep_plots_accuracy_against_correlation(tmp_path, run_ttrl):
    out = tmp_path / "sweep.json"
    result = run_ttrl("bench", "--simulate", "--sim", "groups=80", "--sweep", "correlation=0:0.8:3",
                      "--estimators", "majority_vote,dare", "--report", str(tmp_path / "sweep"), "--output", str(out))
    assert result.returncode == 0, result.stderr
    sweep = json.loads(out.read_text())
    assert sweep["sweep"]["knob"] == "correlation" and sweep["sweep"]["values"] == [0.0, 0.4, 0.8]
    label_acc = [run["results"]["estimators"][0]["metrics"]["label_accuracy"] for run in sweep["runs"]]
    assert label_acc[0] > label_acc[1] > label_acc[2]  # collapse onto a wrong mode defeats the vote
    _png_size(tmp_path / "sweep" / "sweep_correlation.png")
    assert "label_accuracy" in result.stdout


def test_label_scoring_shortcut_agrees_with_the_definition():
    from ttrl.core.answers import AnswerEngine
    from ttrl.core.metrics import grade_group, label_facts, label_support

    engine = AnswerEngine(load_plugins(entry_points=False, warn=False).registry)
    classes = engine.cluster(["1/2", "\\frac{1}{2}", "2", None], "math")
    truth = grade_group(engine, classes, "0.5", "math")
    for label in ("1/2", "2", "\\dfrac{1}{2}", "7", None):
        # the definition: an equivalence check against the reference, and the label's class size
        expected = (None, None) if label is None else (
            engine.equivalent(label, "0.5", "math"), label_support(engine, classes, label, "math"))
        assert label_facts(engine, classes, truth, label) == expected, label
    assert label_facts(engine, classes, truth, "1/2") == (True, 2)  # a representative: no check needed


def test_a_group_whose_task_has_no_extractor_is_a_user_error_naming_its_line(tmp_path, run_ttrl):
    path = tmp_path / "tasks.jsonl"
    odd = {**group("b", ["7", "7"], "7"), "task": "chemistry"}
    path.write_text(json.dumps(group("a", ["3", "3"], "3")) + "\n" + json.dumps(odd) + "\n")
    result = run_ttrl("bench", "--data", str(path), "--estimators", "majority_vote")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{path}:2" in result.stderr and "'chemistry'" in result.stderr and "Unknown extractor" in result.stderr


def test_journal_lines_are_plain_json_and_read_back_exactly(tmp_path):
    from ttrl.harness.plan import PluginRecipe
    from ttrl.harness.runner import without_run_facts

    # 3 rollouts a group: ratios such as 1/3 need every bit of a float64
    data = simulated_dataset(SimulationSettings(groups=30, rollouts=3, correlation=0.3))
    plan = BenchPlan(specs=(ComponentSpec(name="majority_vote", label="mv"), ComponentSpec(name="dare", label="dare")),
                     config=RunConfig().model_dump(), recipe=PluginRecipe(entry_points=False))
    out = tmp_path / "results.json"
    written = run_bench(plan, data, shard_size=10, output=out).results
    header, *lines = (tmp_path / "results.json.partial.jsonl").read_text().splitlines()
    assert json.loads(header)["ttrl_bench_journal"] == 3 and len(lines) == 3
    shard = json.loads(lines[0])
    assert shard["shard"] == 0 and shard["groups"] == 10
    assert set(shard["truth"]["ground_truth_ratio"]) <= {0.0, 1 / 3, 2 / 3, 1.0}
    assert shard["truth"]["num_rollouts"] == [3] * 10
    assert set(shard["estimators"]["mv"]["scores"]["label_accuracy"]) <= {0.0, 1.0}
    assert None in shard["estimators"]["dare"]["scores"]["reward_accuracy"]  # null where dare's rewards are not 0/1
    # every shard read back from the journal, none recomputed: the same results as in memory
    read_back = run_bench(plan, data, shard_size=10, output=out, resume=True).results
    assert read_back["harness"]["shards_reused"] == 3
    in_memory = run_bench(plan, data, shard_size=10).results
    assert without_run_facts(read_back) == without_run_facts(in_memory) == without_run_facts(written)


def test_inputs_are_checked_per_shard_and_one_missing_group_skips_the_estimator(tmp_path):
    from ttrl.harness.plan import PluginRecipe
    from ttrl.harness.runner import without_run_facts
    from ttrl.harness.sources import file_dataset

    path = tmp_path / "mixed.jsonl"
    lines = [group("a", ["1", "1", "2"], "1", [0.1, 0.2, 0.3]), group("b", ["3", "4"], "3"), group("c", ["5", "5"], "5", [0.1, 0.2])]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    data, _ = file_dataset(path)
    plan = BenchPlan(specs=(ComponentSpec(name="majority_vote", label="mv"), ComponentSpec(name="entropy", label="entropy")),
                     config=RunConfig().model_dump(), recipe=PluginRecipe(entry_points=False))
    one_group_shards = run_bench(plan, data, shard_size=1).results
    mv, entropy = one_group_shards["estimators"]
    # entropy ran on the shards of groups a and c, but group b lacks its inputs: the estimator is skipped
    assert entropy["skipped"].startswith("skipped: 1 of 3 group(s) lack its inputs") and "group 'b'" in entropy["skipped"]
    assert entropy["metrics"]["pairwise_accuracy"] is None
    assert mv["metrics"]["label_accuracy"] == 1.0 and one_group_shards["data"]["rollouts"] == 7
    assert without_run_facts(run_bench(plan, data, shard_size=10).results) == without_run_facts(one_group_shards)

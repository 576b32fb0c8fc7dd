"""Output people read: names whole at 80 columns, listings that say what components need, options on
the command line, did-you-mean for config keys, and reports (colours, metric lines, left-out groups,
no absolute paths)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "examples" / "rollouts" / "tiny.jsonl"
LONG_LABEL = "dare_alpha_0.3_with_a_rather_long_label"
NAMES = ("majority_vote", "entropy", "self_certainty", LONG_LABEL)


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory):
    """One bench on the built-in set at 80 columns, with a labelled spec, a command-line option and a report."""
    import os
    import subprocess
    import sys

    where = tmp_path_factory.mktemp("bench")
    config = where / "run.yaml"
    config.write_text(textwrap.dedent(f"""\
        estimators:
          - name: majority_vote
          - name: dare
            label: {LONG_LABEL}
            options: {{alpha: 0.3}}
          - name: entropy
          - name: self_certainty
    """))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTRL_")}
    env["COLUMNS"] = "80"
    proc = subprocess.run(
        [sys.executable, "-m", "ttrl", "bench", "--config", str(config), "--option", f"{LONG_LABEL}.tau=0.1",
         "--data", str(REPO / "ttrl" / "data" / "builtin_rollouts.jsonl"),
         "--output", str(where / "results.json"), "--report", str(where / "report")],
        capture_output=True, text=True, env=env, cwd=where, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    return where, proc


def test_bench_table_keeps_names_whole_at_80_columns(bench_run):
    _, proc = bench_run
    lines = proc.stdout.splitlines()
    assert max(map(len, lines)) <= 80, proc.stdout
    for name in NAMES:
        assert any(f" {name} " in line for line in lines), (name, proc.stdout)
    assert "…" not in proc.stdout
    assert "estimator" in proc.stdout and "+answers" in proc.stdout  # both costs shown


def test_bench_takes_per_estimator_options_on_the_command_line(bench_run):
    where, _ = bench_run
    results = json.loads((where / "results.json").read_text())
    dare = next(e for e in results["estimators"] if e["label"] == LONG_LABEL)
    assert dare["options"]["alpha"] == 0.3 and dare["options"]["tau"] == 0.1


def test_report_defines_metrics_links_docs_and_names_no_absolute_path(bench_run):
    where, _ = bench_run
    report = (where / "report" / "report.md").read_text()
    assert str(where) not in report and str(REPO) not in report and "/" + "tmp" not in report
    for line in ("- **label acc**:", "- **pairwise acc**:", "- **+answers s**:", "- **estimator s**:"):
        assert line in report
    assert "docs/bench.md" in report and "docs/formats.md" in report
    assert "Left out:" in report and "with no correct rollout" in report  # the pairwise plot's groups
    for png in ("rewards_by_correctness.png", "label_accuracy_vs_majority_ratio.png", "pairwise_by_difficulty.png"):
        assert (where / "report" / png).stat().st_size > 1000
    assert not list((where / "report").glob(".*.tmp"))


def test_colours_are_the_same_in_every_report():
    from ttrl.harness.report import colour_of, style_of

    builtins = ["majority_vote", "dare", "entropy", "self_certainty"]
    assert len({colour_of(n) for n in builtins}) == len(builtins)
    # a colour depends on the name only, not on which other estimators a plot holds or their order
    assert colour_of(LONG_LABEL) == colour_of(LONG_LABEL) and style_of("dare", 0)["color"] == style_of("dare", 3)["color"]


@pytest.mark.parametrize("kwargs", [{}, {"groups": 5}])
def test_plots_say_which_groups_they_leave_out(kwargs):
    from ttrl.harness.report import left_out_of_plots

    scores = {"ground_truth_ratio": [0.0, 0.5, 1.0], "majority_ratio": [0.5, None, 1.0],
              "label_accuracy": [0.0, None, 1.0]}
    groups = kwargs.get("groups", 3)
    notes = left_out_of_plots({"majority_vote": {"scores": scores}}, groups)
    assert "1 group(s) with no correct rollout" in notes["pairwise"] and "1 group(s) with every rollout correct" in notes["pairwise"]
    assert "majority_vote: 1 group(s) without a label" in notes["label"]
    assert ("2 group(s) without a reference" in notes["rewards"]) == (groups == 5)


@pytest.mark.parametrize("command", [["plugins"], ["estimators"], ["extractors"]])
@pytest.mark.parametrize("columns", ["80", None])
def test_listings_keep_names_whole_and_fit_the_width(run_ttrl, command, columns):
    result = run_ttrl(*command, env={"COLUMNS": columns} if columns else {})
    assert result.returncode == 0, result.stderr
    width = int(columns or 100)  # piped output without COLUMNS: 100 columns in every command
    assert max(len(line.rstrip()) for line in result.stdout.splitlines()) <= width
    expected = {"plugins": ["ttrl.plugins.majority_vote", "ttrl.plugins.self_certainty", "ttrl.plugins.extractors"],
                "estimators": ["uncertainty_normalization", "self_certainty", "majority_vote"],
                "extractors": ["multiple_choice", "math_boxed", "number"]}[command[0]]
    for name in expected:
        assert name in result.stdout and "…" not in result.stdout


def test_estimators_say_what_they_need_and_when_they_have_no_options(run_ttrl):
    out = run_ttrl("estimators").stdout
    # blocks of one estimator each, under rules that group them by what they need
    text = "\n".join(line for line in out.splitlines() if not line.startswith("─"))
    blocks = {block.split()[0]: block for block in text.split("\n\n") if block.strip()}
    assert "─ needs answers ─" in out.replace("─" * 3, "─")
    assert "needs: stats.mean_self_certainty" in blocks["self_certainty"] and "no options" in blocks["self_certainty"]
    assert "needs: answers (extracted and clustered), stats.mean_entropy" in blocks["dare"]
    assert "needs: answers" in blocks["majority_vote"] and "--option n_train" in blocks["majority_vote"]
    assert "with the defaults: stats.mean_entropy" in blocks["entropy"]


def test_unknown_extractor_points_to_a_listing_that_exists(run_ttrl, tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("estimator: {name: majority_vote}\nanswers: {task: mathh}\n")
    result = run_ttrl("estimate", "--data", str(TINY), "--config", str(config), "--output", "o.jsonl")
    assert result.returncode == 2 and "Unknown extractor 'mathh'" in result.stderr
    assert "Run `ttrl extractors`" in result.stderr
    assert run_ttrl("extractors", "--json").returncode == 0
    shapers = run_ttrl("reward-shapers")
    assert shapers.returncode == 0 and "No reward shapers registered." in shapers.stdout


@pytest.mark.parametrize("option, fragment", [
    ("alpha=0.3", "--option ESTIMATOR.KEY=VALUE"),
    ("dar.alpha=0.3", "'dar' is not one of the estimators being benched"),
    ("dare.alpah=0.3", "alpah"),
])
def test_bench_option_mistakes(run_ttrl, option, fragment):
    result = run_ttrl("bench", "--data", str(TINY), "--estimators", "majority_vote,dare", "--option", option)
    assert result.returncode == 2 and fragment in result.stderr and "Traceback" not in result.stderr, result.stderr


def plugin_module(folder: Path, module: str, name: str, estimate: str) -> None:
    """A one-estimator plugin module ``module`` registering ``estimate`` under ``name``."""
    body = textwrap.dedent(estimate)
    (folder / f"{module}.py").write_text(
        f"import ttrl\n\n{body}\n\n@ttrl.hookimpl\ndef register_estimators(register):\n    register({name!r}, estimate)\n"
    )


def test_estimate_takes_plugin_modules_like_bench(run_ttrl, tmp_path):
    plugin_module(tmp_path, "ttrl_half", "half", """\
        def estimate(group, options):
            \"\"\"Reward 0.5 for every rollout (a test plugin).\"\"\"
            return ttrl.Estimate(rewards=[0.5] * len(group.rollouts))
    """)
    out = tmp_path / "e.jsonl"
    result = run_ttrl("estimate", "--data", str(TINY), "--estimator", "half", "--plugin", "ttrl_half",
                      "--output", str(out), pythonpath=[tmp_path])
    assert result.returncode == 0, result.stderr
    assert {r for line in out.read_text().splitlines() for r in json.loads(line)["rewards"]} == {0.5}
    missing = run_ttrl("estimate", "--data", str(TINY), "--estimator", "half", "--plugin", "ttrl_nope", "--output", str(out))
    assert missing.returncode == 2 and "--plugin 'ttrl_nope' cannot be imported" in missing.stderr


def test_mistyped_config_keys_get_did_you_mean(run_ttrl, tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("estimator:\n  name: dare\n  optons: {alpha: 0.3}\nanswrs: {timeout_seconds: 2}\n")
    result = run_ttrl("estimate", "--data", str(TINY), "--config", str(config), "--output", "o.jsonl")
    assert result.returncode == 2
    assert f"estimator.optons is not a known setting (did you mean: options?) ({config}:3)" in result.stderr
    assert "answrs is not a known setting (did you mean: answers?)" in result.stderr


def test_sweep_tables_fit_80_columns_with_names_whole(run_ttrl, tmp_path):
    result = run_ttrl("bench", "--simulate", "--sim", "groups=20", "--sweep", "correlation=0:0.9:10",
                      "--report", str(tmp_path / "sweep"), env={"COLUMNS": "80"})
    assert result.returncode == 0, result.stderr
    assert max(map(len, result.stdout.splitlines())) <= 80 and "…" not in result.stdout
    assert "self_certainty" in result.stdout and " 0.9 " in result.stdout
    assert "docs/formats.md" in (tmp_path / "sweep" / "report.md").read_text()


def test_an_unwritable_result_fails_its_own_line_not_the_file(run_ttrl, tmp_path):
    plugin_module(tmp_path, "ttrl_weird", "weird", """\
        def estimate(group, options):
            \"\"\"Results JSON cannot hold, on the first two groups (a test plugin).\"\"\"
            rewards = [1.0] * len(group.rollouts)
            if group.id == "tiny/lucky-hit":
                return ttrl.Estimate(rewards=rewards, diagnostics={"handle": object()})
            if group.id == "tiny/fractions":
                return ttrl.Estimate(rewards=rewards, label="\\ud800")
            return ttrl.Estimate(rewards=rewards, label="ok")
    """)
    out = tmp_path / "e.jsonl"
    result = run_ttrl("estimate", "--data", str(TINY), "--estimator", "weird", "--plugin", "ttrl_weird",
                      "--output", str(out), pythonpath=[tmp_path])
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [line["id"] for line in lines][:2] == ["tiny/lucky-hit", "tiny/fractions"] and len(lines) == 4
    assert all("cannot be written as JSON" in line["diagnostics"]["error"] for line in lines[:2])
    assert all(line["label"] == "ok" for line in lines[2:])

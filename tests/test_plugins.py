"""The plugin manager: built-ins, real entry points, broken plugins, strict mode, allowlist."""

from __future__ import annotations

import json
import warnings

import pytest

import ttrl
from ttrl.core.errors import PluginError
from ttrl.core.plugins import DEFAULT_PLUGINS, PluginWarning, load_plugins

BUILTIN_ESTIMATORS = {"majority_vote", "dare", "entropy", "self_certainty"}


def _load(**kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plugins = load_plugins(**kwargs)
    return plugins, [str(w.message) for w in caught if issubclass(w.category, PluginWarning)]


@pytest.fixture
def with_examples(example_plugins_dir, monkeypatch):
    monkeypatch.syspath_prepend(str(example_plugins_dir))
    monkeypatch.delenv("TTRL_LOAD_PLUGINS", raising=False)
    monkeypatch.delenv("TTRL_STRICT_PLUGINS", raising=False)
    return example_plugins_dir


def test_builtins_register_through_the_same_hooks_without_problems():
    plugins, warned = _load(entry_points=False)
    assert warned == []
    assert [p.name for p in plugins.plugins] == list(DEFAULT_PLUGINS)
    assert all(p.builtin and p.loaded and p.distribution == "ttrl" for p in plugins.plugins)
    assert BUILTIN_ESTIMATORS <= set(plugins.registry.estimators.names())
    assert {"math", "multiple_choice", "number"} <= set(plugins.registry.extractors.names())


def test_hyphenated_spelling_is_an_alias():
    registry = load_plugins(entry_points=False).registry
    assert registry.estimators.get("self-certainty").name == "self_certainty"
    assert registry.estimators.get("Majority-Vote").name == "majority_vote"


def test_third_party_plugins_are_found_through_real_entry_points(with_examples):
    plugins, warned = _load()
    by_name = {p.name: p for p in plugins.plugins}
    random_plugin = by_name["random"]
    assert (random_plugin.distribution, random_plugin.version) == ("ttrl-random", "0.2.0")
    assert random_plugin.hooks == ["register_estimators"] and random_plugin.errors == []
    assert plugins.registry.estimators.get("random").plugin == "random"
    assert plugins.registry.estimators.get("random_baseline").name == "random"
    assert plugins.registry.shapers.get("length_penalty").plugin == "length_penalty"
    # the broken distribution is reported, with distribution, version and reason, as warnings
    assert any('"broken_import" (ttrl-broken 0.0.1): import failed: ModuleNotFoundError' in w for w in warned)
    assert not by_name["broken_import"].loaded


def test_a_duplicate_name_is_refused_for_the_newcomer_only(with_examples):
    plugins, warned = _load()
    duplicate = next(p for p in plugins.plugins if p.name == "duplicate_name")
    assert duplicate.loaded
    assert any("'majority_vote' refused" in e and "ttrl.plugins.majority_vote" in e for e in duplicate.errors)
    assert plugins.registry.estimators.get("majority_vote").plugin == "ttrl.plugins.majority_vote"
    # what the plugin registered without conflict still works
    assert plugins.registry.estimators.get("constant_one").plugin == "duplicate_name"
    assert any("duplicate_name" in w for w in warned)


def test_strict_mode_turns_problems_into_an_error(with_examples, monkeypatch):
    monkeypatch.setenv("TTRL_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError) as excinfo:
        load_plugins()
    message = str(excinfo.value)
    assert "broken_import" in message and "duplicate_name" in message and "TTRL_STRICT_PLUGINS" in message


@pytest.mark.parametrize("allow, expected", [("random", {"random"}), ("ttrl-length-penalty", {"length_penalty"}), ("", set())])
def test_allowlist_loads_only_the_named_plugins(with_examples, monkeypatch, allow, expected):
    monkeypatch.setenv("TTRL_LOAD_PLUGINS", allow)
    plugins, warned = _load()
    third_party = {p.name for p in plugins.plugins if not p.builtin}
    assert third_party == expected
    assert warned == []


class _TypoPlugin:
    @ttrl.hookimpl
    def register_estimator(self, register):  # singular: not a ttrl hook
        register("never", lambda group, options: None)


class _RaisingPlugin:
    @ttrl.hookimpl
    def register_estimators(self, register):
        raise RuntimeError("boom")


def test_unknown_hooks_and_raising_hooks_are_reported_not_fatal():
    plugins, warned = _load(entry_points=False, extra=[("typo", _TypoPlugin()), ("raising", _RaisingPlugin())])
    by_name = {p.name: p for p in plugins.plugins}
    assert "implements unknown hook 'register_estimator'" in by_name["typo"].errors[0]
    assert by_name["raising"].errors == ["register_estimators raised RuntimeError: boom"]
    assert "majority_vote" in plugins.registry.estimators
    assert len(warned) == 2


def test_each_load_is_isolated():
    first = load_plugins(entry_points=False, extra=[("raising", _RaisingPlugin())], warn=False)
    second = load_plugins(entry_points=False, warn=False)
    assert first.manager is not second.manager
    assert "raising" not in {p.name for p in second.plugins}


def test_ttrl_plugins_lists_versions_and_reports_the_broken_plugin(run_ttrl, example_plugins_dir):
    result = run_ttrl("plugins", "--json", pythonpath=[example_plugins_dir])
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["random"]["version"] == "0.2.0" and rows["random"]["registered"] == {"estimators": ["random"]}
    assert rows["broken_import"]["loaded"] is False
    assert 'Warning: plugin "broken_import" (ttrl-broken 0.0.1): import failed' in result.stderr
    table = run_ttrl("plugins", pythonpath=[example_plugins_dir], env={"COLUMNS": "200"})
    assert table.returncode == 0 and "ttrl-random" in table.stdout and "0.2.0" in table.stdout


def test_ttrl_estimators_lists_third_party_estimators_with_options(run_ttrl, example_plugins_dir):
    result = run_ttrl("estimators", "--json", pythonpath=[example_plugins_dir], env={"TTRL_LOAD_PLUGINS": "random"})
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["random"]["plugin"] == "random"
    options = {o["name"]: o for o in rows["random"]["options"]}
    assert options["p"] == {"name": "p", "type": "float", "default": 0.5, "required": False,
                            "description": "Probability of reward 1 (bernoulli)."}
    assert BUILTIN_ESTIMATORS <= set(rows)


def test_strict_plugins_in_the_cli_exits_2_without_traceback(run_ttrl, example_plugins_dir):
    result = run_ttrl("estimators", pythonpath=[example_plugins_dir], env={"TTRL_STRICT_PLUGINS": "1"})
    assert result.returncode == 2
    assert result.stderr.startswith("Error: Plugin problems") and "Traceback" not in result.stderr


def test_a_third_party_estimator_and_shaper_run_end_to_end(run_ttrl, example_plugins_dir, repo_root, tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(
        "estimator: {name: random, options: {seed: 3}}\n"
        "reward_shaping:\n  - {name: length_penalty, options: {budget: 2, coef: 1.0}}\n"
    )
    out = tmp_path / "estimates.jsonl"
    result = run_ttrl("estimate", "--data", str(repo_root / "examples/rollouts/tiny.jsonl"), "--config", str(config),
                      "--output", str(out), pythonpath=[example_plugins_dir], env={"TTRL_LOAD_PLUGINS": "random,length_penalty"})
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    first = lines[0]
    assert first["estimator"] == "random"
    # "So the answer is $\boxed{1}$." has 5 words: penalty 1.0 * (5 - 2) / 2 = 1.5 on a 0/1 reward
    assert first["diagnostics"]["length_penalty"] == [1.5] * 8
    assert all(r in (-1.5, -0.5) for r in first["rewards"])

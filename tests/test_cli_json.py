"""`--json` outputs keep the keys documented in docs/cli-json.md."""

from __future__ import annotations

import json
import re


def documented_keys(repo_root, heading: str) -> list[set[str]]:
    text = (repo_root / "docs" / "cli-json.md").read_text()
    section = text.split(f"## `{heading}`", 1)[1].split("\n## ", 1)[0]
    tables, current = [], set()
    for line in section.splitlines():
        match = re.match(r"^\| `(\w+)` \|", line)
        if match:
            current.add(match.group(1))
        elif current:
            tables.append(current)
            current = set()
    if current:
        tables.append(current)
    return tables


def test_plugins_json_keys(run_ttrl, repo_root):
    (keys,) = documented_keys(repo_root, "ttrl plugins --json")
    result = run_ttrl("plugins", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert rows and all(set(row) == keys for row in rows)


def test_estimators_json_keys(run_ttrl, repo_root):
    estimator_keys, option_keys = documented_keys(repo_root, "ttrl estimators --json")
    result = run_ttrl("estimators", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert rows and all(set(row) == estimator_keys for row in rows)
    options = [o for row in rows for o in row["options"]]
    assert options and all(set(o) == option_keys for o in options)


def json_rows(run_ttrl, *args: str, **kwargs) -> list[dict]:
    result = run_ttrl(*args, "--json", **kwargs)
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert rows
    return rows


def test_extractors_json_keys(run_ttrl, repo_root):
    (keys,) = documented_keys(repo_root, "ttrl extractors --json")
    rows = json_rows(run_ttrl, "extractors")
    assert all(set(row) == keys for row in rows)
    assert {"math", "number", "multiple_choice"} <= {row["name"] for row in rows}


def test_reward_shapers_json_has_the_estimator_keys(run_ttrl, repo_root, example_plugins_dir):
    estimator_keys, _ = documented_keys(repo_root, "ttrl estimators --json")
    rows = json_rows(run_ttrl, "reward-shapers", pythonpath=[example_plugins_dir])
    assert all(set(row) == estimator_keys for row in rows)

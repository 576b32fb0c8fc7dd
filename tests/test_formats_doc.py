"""docs/formats.md documents what the code reads: every rollout-file field, every metric, every TTRL_* variable."""

from __future__ import annotations

from ttrl.core.env import VARIABLES
from ttrl.core.rollout_files import _GroupLine, _RolloutLine
from ttrl.harness.report import METRIC_LINES


def test_every_field_metric_and_variable_is_documented(repo_root):
    text = (repo_root / "docs" / "formats.md").read_text(encoding="utf-8")
    for model in (_GroupLine, _RolloutLine):
        for name in model.model_fields:
            assert f"`{name}`" in text, name
    for metric in ("label_accuracy", "reward_accuracy", "majority_ratio", "pairwise_accuracy",
                   "ground_truth_ratio", "pass_at_n", "seconds", "rollouts_per_second"):
        assert f"| `{metric}` |" in text, metric
    for name, var in VARIABLES.items():
        if var.kind != "internal":
            assert f"| `{name}` |" in text, name
    assert "+answers s" in text and all(title for title, _ in METRIC_LINES)


def test_nothing_sends_users_to_a_file_outside_the_repository(repo_root):
    """Docs, help texts, comments and messages point to docs/formats.md, never to a contract file
    that users do not have."""
    paths = [repo_root / "README.md", repo_root / "CONTRIBUTING.md", *(repo_root / "docs").glob("*.md")]
    for folder in ("core", "plugins", "adapters", "ttrl", "examples", "benchmarks", "scripts"):
        paths += [p for p in (repo_root / folder).rglob("*") if p.suffix in {".py", ".md", ".yaml", ".toml"}]
    offending = [str(p.relative_to(repo_root)) for p in paths if "CONTRACT.md" in p.read_text(encoding="utf-8")]
    assert offending == [], "point these at docs/formats.md"

"""Every hook has a section `## hook_name(args)` in docs/plugin-hooks.md matching its spec."""

from __future__ import annotations

import inspect
import re

from ttrl.core import hookspecs

HEADING = re.compile(r"^## (\w+)\(([^)]*)\)\s*$", re.MULTILINE)


def spec_signatures() -> dict[str, list[str]]:
    return {
        name: list(inspect.signature(obj).parameters)
        for name, obj in vars(hookspecs).items()
        if callable(obj) and hasattr(obj, "ttrl_spec")
    }


def documented_signatures(repo_root) -> dict[str, list[str]]:
    text = (repo_root / "docs" / "plugin-hooks.md").read_text()
    return {m.group(1): [a.strip() for a in m.group(2).split(",") if a.strip()] for m in HEADING.finditer(text)}


def test_every_hook_is_documented_with_its_signature(repo_root):
    specs = spec_signatures()
    assert specs, "no hook specs found"
    assert documented_signatures(repo_root) == specs


def test_every_hook_spec_has_a_full_docstring():
    for name, obj in vars(hookspecs).items():
        if callable(obj) and hasattr(obj, "ttrl_spec"):
            doc = inspect.getdoc(obj) or ""
            assert ":param register:" in doc, f"{name} lacks :param: documentation"

"""Model output is hostile input: nothing in ttrl may evaluate text as code.

The scan covers every Python file of the installed packages (core/, plugins/, adapters/, ttrl/):
no ``eval``/``exec``/``compile`` of strings, no ``sympify``/``parse_expr``/``parse_latex`` (which eval
their input), and no import of those names. math-verify parses answers only inside the sandboxed
checker process, through its own LaTeX grammar.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

FORBIDDEN_CALLS = {"eval", "exec", "compile", "__import__", "sympify", "parse_expr", "parse_latex", "S"}
FORBIDDEN_ATTRIBUTES = {"sympify", "parse_expr", "parse_latex"}
PACKAGE_FOLDERS = ("core", "plugins", "adapters", "ttrl")


def _sources(repo_root: Path) -> list[Path]:
    files = []
    for folder in PACKAGE_FOLDERS:
        files.extend(sorted((repo_root / folder).rglob("*.py")))
    return files


def forbidden_uses(source: str, filename: str) -> list[str]:
    """``file:line: what`` for each forbidden call or import in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id in FORBIDDEN_CALLS:
                found.append(f"{filename}:{node.lineno}: {func.id}(...)")
            elif isinstance(func, ast.Attribute) and func.attr in FORBIDDEN_ATTRIBUTES:
                found.append(f"{filename}:{node.lineno}: .{func.attr}(...)")
            elif isinstance(func, ast.Attribute) and func.attr in {"eval", "exec"} and isinstance(func.value, ast.Name) and func.value.id in {"builtins", "__builtins__"}:
                found.append(f"{filename}:{node.lineno}: builtins.{func.attr}(...)")
        elif isinstance(node, ast.ImportFrom):
            names = {alias.name for alias in node.names}
            bad = names & (FORBIDDEN_ATTRIBUTES | {"eval", "exec"})
            if bad:
                found.append(f"{filename}:{node.lineno}: from {node.module} import {', '.join(sorted(bad))}")
    return found


def test_the_scan_finds_what_it_looks_for():
    sample = "import sympy\nx = eval(t)\nsympy.sympify(t)\nfrom sympy.parsing.sympy_parser import parse_expr\nexec(t)\n"
    assert sorted(forbidden_uses(sample, "s.py")) == [
        "s.py:2: eval(...)",
        "s.py:3: .sympify(...)",
        "s.py:4: from sympy.parsing.sympy_parser import parse_expr",
        "s.py:5: exec(...)",
    ]
    assert forbidden_uses("model.eval()\nast.literal_eval(t)\n", "ok.py") == []


def test_no_package_source_evaluates_text(repo_root):
    files = _sources(repo_root)
    assert any(f.name == "checker.py" for f in files)  # the scan reaches the answer engine
    found = []
    for path in files:
        found.extend(forbidden_uses(path.read_text(encoding="utf-8"), str(path.relative_to(repo_root))))
    if found:
        pytest.fail("forbidden evaluation of text:\n" + "\n".join(found))

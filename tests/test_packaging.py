"""Packaging: only the ttrl namespace is installed, and the core needs no heavy dependency."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import tomllib
import zipfile

import pytest

HEAVY = ("torch", "ray", "openrlhf", "transformers", "trl", "vllm", "deepspeed", "matplotlib")


def mapped_packages(repo_root) -> dict[str, str]:
    config = tomllib.loads((repo_root / "pyproject.toml").read_text())["tool"]["setuptools"]
    return {pkg: config["package-dir"].get(pkg) for pkg in config["packages"]}


def test_every_package_folder_is_listed_in_pyproject(repo_root):
    config = tomllib.loads((repo_root / "pyproject.toml").read_text())["tool"]["setuptools"]
    roots = config["package-dir"]
    expected = set()
    for top, folder in roots.items():
        if "." in top.removeprefix("ttrl.") and top != "ttrl":
            continue
        base = repo_root / folder
        for init in base.rglob("__init__.py"):
            rel = init.parent.relative_to(base)
            expected.add(".".join([top, *rel.parts]))
    assert expected <= set(config["packages"]), f"add to pyproject packages: {sorted(expected - set(config['packages']))}"


@pytest.mark.slow
def test_the_wheel_installs_only_the_ttrl_namespace(repo_root, tmp_path):
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--verbose", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(repo_root)],
        check=True, cwd=tmp_path, capture_output=True, text=True,
    )
    # `make demo` shows a fresh user these build messages: no warning about the package layout
    assert "Warning" not in build.stdout + build.stderr, build.stdout[-3000:] + build.stderr[-3000:]
    (wheel,) = tmp_path.glob("ttrl-*.whl")
    tops = {name.split("/", 1)[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"ttrl"}
    names = zipfile.ZipFile(wheel).namelist()
    assert "ttrl/core/hookspecs.py" in names and "ttrl/plugins/majority_vote.py" in names
    assert "ttrl/data/builtin_rollouts.jsonl" in names


def test_core_commands_work_without_heavy_dependencies(repo_root, tmp_path):
    """`import ttrl`, `ttrl plugins` and `ttrl estimators` must not need torch, ray or a trainer."""
    script = textwrap.dedent(f"""
        import sys
        BLOCKED = {HEAVY!r}

        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ModuleNotFoundError(f"blocked for this test: {{name}}")
                return None

        sys.meta_path.insert(0, Block())
        import ttrl
        from ttrl.cli import main
        for args in (["plugins", "--json"], ["estimators", "--json"]):
            try:
                main(args)
            except SystemExit as exc:
                assert exc.code == 0, (args, exc.code)
        leaked = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
        assert not leaked, leaked
        print("OK")
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("OK")

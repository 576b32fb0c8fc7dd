"""Shared fixtures: paths, the example plugin distributions installed for real, and a CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
EXAMPLE_PLUGINS = ("ttrl-random", "ttrl-length-penalty", "ttrl-broken", "ttrl-misbehaving")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"public benchmark data not found at {SHARED_DATA} (expected ../shared/data beside the repo)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def example_plugins_dir(tmp_path_factory) -> Path:
    """The example plugin distributions, installed by pip into a directory of their own.

    Installing into a separate target (instead of the venv) keeps the deliberately broken plugin out of
    every other test and out of developers' `ttrl` runs; putting the directory on sys.path or
    PYTHONPATH makes importlib.metadata discover their entry points exactly as for a venv install.
    """
    target = tmp_path_factory.mktemp("example-plugins")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), *[str(REPO_ROOT / "examples" / name) for name in EXAMPLE_PLUGINS]],
        check=True,
        cwd=target,
    )
    return target


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def run_ttrl(tmp_path):
    """Run the real `ttrl` command in a subprocess: ``run_ttrl(*args, env={...}, pythonpath=[...])``."""

    def run(*args: str, env: dict[str, str] | None = None, pythonpath: list[Path] = (), timeout: float = 300) -> CliResult:
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("TTRL_")}
        full_env.update(env or {})
        if pythonpath:
            full_env["PYTHONPATH"] = os.pathsep.join(str(p) for p in pythonpath)
        proc = subprocess.run(
            [sys.executable, "-m", "ttrl", *args],
            capture_output=True, text=True, env=full_env, cwd=tmp_path, timeout=timeout,
        )
        return CliResult(proc.returncode, proc.stdout, proc.stderr)

    return run


@pytest.fixture(scope="session")
def misbehaving_registry(example_plugins_dir):
    """Built-in plugins plus ``examples/ttrl-misbehaving``, found through its installed entry point."""
    from ttrl.core.plugins import load_plugins

    sys.path.insert(0, str(example_plugins_dir))
    try:
        return load_plugins(allow={"misbehaving"}).registry
    finally:
        sys.path.remove(str(example_plugins_dir))

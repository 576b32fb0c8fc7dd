"""OpenRLHF adapter: ``ttrl train --config RUN.yaml`` with ``trainer: openrlhf``.

Runs OpenRLHF 0.11.x's PPO/GRPO trainer (Ray + vLLM + DeepSpeed) with the run config's estimator applied
per prompt group. Layout:

- :mod:`ttrl.core.groups` (shared with every trainer) — a prompt's N responses (+ token statistics,
  + label for metrics) → rewards, train subset, failure policy, metrics.
- :mod:`.settings` — the ``openrlhf:`` section, version and fail-early checks, the OpenRLHF flags.
- :mod:`.binding` — the patches applied inside OpenRLHF's Ray actors.
- :mod:`.launch` — the launcher process around OpenRLHF's own entry point.
- :mod:`.reward_file` — generated ``--reward.remote_url`` files (ground-truth grader; per-sample path).

User documentation: docs/openrlhf.md.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from ttrl.core.config import RunConfig
from ttrl.core.errors import UserError

from .settings import (
    OpenRLHFSettings,
    check_version,
    dump_spec,
    estimation_spec,
    format_command,
    launch_command,
    load_settings,
    openrlhf_flags,
    resolve_estimation,
)

__all__ = ["OpenRLHFSettings", "launch", "plan"]

REWARD_FILE = "ttrl_grader_reward.py"
SPEC_FILE = "ttrl_estimation_spec.json"


def _resolve_paths(settings: OpenRLHFSettings, config: RunConfig, config_path: Path) -> OpenRLHFSettings:
    """Data paths and ``output_dir`` relative to the config file, made absolute (Ray workers do not
    share the cwd)."""
    base = Path(config_path).resolve().parent
    updates = {}
    for key in ("prompt_data", "eval_data"):
        value = getattr(settings, key)
        if value is None:
            continue
        looks_like_file = value.endswith((".json", ".jsonl", ".parquet", ".csv")) or value.startswith((".", "/", "~"))
        if not looks_like_file:
            continue  # a dataset name OpenRLHF resolves itself
        path = Path(value).expanduser()
        path = path if path.is_absolute() else base / path
        if not path.exists():
            where = config.locate(("openrlhf", key))
            raise UserError(
                f"openrlhf.{key}: {path} does not exist" + (f" ({where})" if where else "")
                + ". Relative paths are read from the run config's folder."
            )
        updates[key] = str(path.resolve())
    output = Path(settings.output_dir).expanduser()
    updates["output_dir"] = str((output if output.is_absolute() else base / output).resolve())
    return settings.model_copy(update=updates)


def plan(config: RunConfig, *, config_path: Path) -> tuple[dict, list[str], Path]:
    """Everything ``launch`` would do, validated, with nothing started: ``(spec, command, output_dir)``."""
    from ttrl.core.plugins import default_plugins

    settings = _resolve_paths(load_settings(config), config, config_path)
    config, _pipeline, use_stats = resolve_estimation(config, settings, default_plugins().registry)
    output = Path(settings.output_dir)
    spec = estimation_spec(config, settings, use_stats)
    command = launch_command(openrlhf_flags(settings, output / REWARD_FILE), output / SPEC_FILE)
    return spec, command, output


def launch(config: RunConfig, *, config_path: Path, dry_run: bool) -> int:
    """Validate, then run OpenRLHF (or, with ``dry_run``, print what would run). Returns an exit status.

    The run config is checked before the environment, so a typo is found on a laptop without OpenRLHF.
    """
    spec, command, output = plan(config, config_path=config_path)
    version = check_version(required=not dry_run)
    settings = load_settings(config)
    env = {**os.environ, "RAY_ADDRESS": settings.ray_address} if settings.ray_address else None
    if dry_run:
        print(f"# OpenRLHF: {version or 'not installed (needed to run; see docs/openrlhf.md)'}")
        if settings.ray_address:
            print(f"# Ray cluster: RAY_ADDRESS={settings.ray_address}")
        print("# Estimator spec (the OpenRLHF Ray actors rebuild the estimator from this):")
        print(json.dumps(spec, indent=2, sort_keys=True))
        print(f"# Command (writes {output / REWARD_FILE} and {output / 'ttrl_estimation_spec.json'} first):")
        print(format_command(command))
        return 0
    from .reward_file import write_reward_file

    output.mkdir(parents=True, exist_ok=True)
    write_reward_file(output / REWARD_FILE, RunConfig.model_validate(spec["run"]), "grader")
    (output / SPEC_FILE).write_text(dump_spec(spec), encoding="utf-8")
    return subprocess.run(command, check=False, env=env).returncode

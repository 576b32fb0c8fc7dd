"""verl adapter: ``ttrl train --config RUN.yaml`` with ``trainer: verl``.

Runs verl 0.9.x's synchronous PPO/GRPO trainer with the run config's estimator applied to each
prompt group (verl's ``uid``). Layout:

- :mod:`.settings` — the ``verl:`` section, version and fail-early checks, the verl keys ttrl sets.
- :mod:`.compose` — verl's own ``ppo_trainer`` config composed with those keys (needs verl).
- :mod:`.batch` — a verl ``DataProto`` through ttrl's group layer: rewards at each response's last
  token, the train mask, the ``ttrl_grpo`` advantage over trained responses, ``ttrl/`` metrics.
- :mod:`.trainer` — ``trainer.v1.trainer_mode: ttrl``, the trainer subclass that calls :mod:`.batch`.
- :mod:`.setup` — the Ray setup hook that registers it in verl's processes.
- :mod:`.grader` — verl's per-sample ``compute_score``: ground-truth grading for validation only.

User documentation: docs/verl.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from ttrl.core.config import RunConfig

from .data import PromptFile, plan_prompt_file, write_converted
from .settings import VerlSettings, check_token_stats, check_version, load_settings, resolve_paths, setup_hook, verl_values
from .spec import SECTION, estimation_spec

__all__ = ["VerlSettings", "launch", "plan"]

CONFIG_NAME = "ttrl_verl_config"
ENTRY_MODULE = "verl.trainer.main_ppo"


def plan(config: RunConfig, *, config_path: Path) -> tuple[VerlSettings, dict[str, Any], list[tuple[PromptFile, str]]]:
    """Everything ``launch`` needs, validated, nothing started: the settings, every verl key ttrl sets,
    and the prompt files to convert into verl's format."""
    from ttrl.core.groups import GroupEstimator
    from ttrl.core.plugins import default_plugins

    from . import grader

    settings = resolve_paths(load_settings(config), config, config_path)
    output = Path(settings.output_dir)
    prompt_files: list[tuple[PromptFile, str]] = []
    updates: dict[str, Any] = {}
    for key, split in (("train_files", "train"), ("val_files", "test")):
        if getattr(settings, key) is None:
            continue
        planned = [plan_prompt_file(Path(name), output) for name in getattr(settings, key)]
        known = {p.target for p, _ in prompt_files}
        prompt_files += [(p, split) for p in planned if p.target not in known]
        updates[key] = [str(p.target) for p in planned]
    settings = settings.model_copy(update=updates)
    if config.estimator is None:
        from ttrl.core.errors import OptionError

        raise OptionError("The run config selects no estimator. Add `estimator: {name: majority_vote}`.")
    estimator = GroupEstimator.from_config(
        config, default_plugins().registry, n_votes=settings.n_votes, n_train=settings.n_train, section=SECTION
    )
    check_token_stats(estimator.stats_needed, config, settings)
    spec = estimation_spec(config, n_votes=settings.n_votes, n_train=settings.n_train)
    values = verl_values(settings, str(Path(grader.__file__).resolve()), spec, config, hook=setup_hook(estimator.stats_needed))
    return settings, values, prompt_files


def command(output_dir: Path) -> list[str]:
    """verl's own entry point on the generated config: what ``ttrl train`` runs, and what a user runs
    themselves (e.g. after ``ray job submit --``)."""
    return [sys.executable, "-m", ENTRY_MODULE, f"--config-path={output_dir}", f"--config-name={CONFIG_NAME}"]


def write_run_files(output: Path, config_text: str, prompt_files: list[tuple[PromptFile, str]]) -> Path:
    """The converted prompt files and ``OUTPUT_DIR/ttrl_verl_config.yaml``: what verl's entry point reads."""
    output.mkdir(parents=True, exist_ok=True)
    for prompt_file, split in prompt_files:
        write_converted(prompt_file, split)
    path = output / f"{CONFIG_NAME}.yaml"
    path.write_text(config_text, encoding="utf-8")
    return path


def launch(config: RunConfig, *, config_path: Path, dry_run: bool) -> int:
    """Validate, then run verl (or, with ``dry_run``, print the resolved verl config). Returns an exit status."""
    settings, values, prompt_files = plan(config, config_path=config_path)
    version = check_version(required=not dry_run)
    output = Path(settings.output_dir)
    if version is None:  # dry run without verl: what ttrl sets, unresolved
        print("# verl: not installed (needed to resolve and run; see docs/verl.md). Keys ttrl sets:")
        for key, value in values.items():
            print(f"{key}: {json.dumps(value, sort_keys=True)}")
        return 0
    from .compose import compose_verl_config, to_yaml, validate_with_verl

    cfg = compose_verl_config(values, config)
    validate_with_verl(cfg, config)
    text = to_yaml(cfg)
    if dry_run:
        print(f"# verl {version}: the resolved configuration (verl's ppo_trainer defaults + ttrl's keys)")
        if settings.ray_address:
            print(f"# Ray cluster: RAY_ADDRESS={settings.ray_address}")
        converted = [f"{p.source} -> {p.target}" for p, _ in prompt_files if p.converted]
        if converted:
            print("# Prompt files converted to verl's rows when training starts: " + "; ".join(converted))
        print(f"# Command (writes {output / (CONFIG_NAME + '.yaml')} first):")
        print("# " + " ".join(command(output)))
        print(text, end="")
        return 0
    write_run_files(output, text, prompt_files)
    env = {**os.environ, "RAY_ADDRESS": settings.ray_address} if settings.ray_address else None
    return subprocess.run(command(output), check=False, env=env).returncode

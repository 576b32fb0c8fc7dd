"""Cost of one TRL GRPO step on CPU: TRL's own GRPOTrainer against the adapter's fast path, in one run.

    .venv/bin/python benchmarks/trl_step.py [--config examples/trl/majority_vote.yaml] [--steps 3] [--rounds 2]

Both arms build the adapter's trainer from the same run config, model and seed (so the same problems,
samples and rewards) and train ``--steps`` steps; the arms alternate ``--rounds`` times so that load
from other processes hits both alike. Printed per arm: seconds per step (median over rounds) split into
generation, the reward function, the loss forward, the backward pass and the optimizer, and the ratio.
``--checkpointing`` adds the arm TRL's defaults give (gradient checkpointing on).
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

PHASES = {
    "generate": ("trl.trainer.grpo_trainer", "GRPOTrainer", "_generate"),
    "reward": ("ttrl.adapters.trl.binding", "EstimatorReward", "__call__"),
    "loss forward": ("trl.trainer.grpo_trainer", "GRPOTrainer", "compute_loss"),
    "backward": ("accelerate", "Accelerator", "backward"),
    "optimizer": ("torch.optim", "AdamW", "step"),
}


def instrument(totals: dict[str, float]) -> None:
    import importlib

    for label, (module, cls_name, attr) in PHASES.items():
        cls = getattr(importlib.import_module(module), cls_name)
        original = getattr(cls, attr)

        @functools.wraps(original)
        def timed(*args, __original=original, __label=label, **kwargs):
            started = time.perf_counter()
            try:
                return __original(*args, **kwargs)
            finally:
                totals[__label] += time.perf_counter() - started

        setattr(cls, attr, timed)


def one_arm(config_path: Path, steps: int, arm: str, totals: dict[str, float], model_cache: dict) -> float:
    import copy

    import torch
    from trl import GRPOTrainer

    from ttrl.adapters.trl import run as trl_run
    from ttrl.adapters.trl.settings import installed_trl_version, prepare
    from ttrl.core.config import load_run_config
    from ttrl.core.plugins import default_plugins
    from ttrl.models import load_causal_lm

    config = load_run_config(config_path)
    run = prepare(config, default_plugins().registry, config_path=config_path, trl_version=installed_trl_version())
    run.grpo_kwargs.update(max_steps=steps, output_dir=str(Path(os.environ.get("TMPDIR", "/tmp")) / "ttrl-trl-step"))
    if arm == "trl, gradient checkpointing":
        run.grpo_kwargs["gradient_checkpointing"] = True
    if "model" not in model_cache:
        model_cache["model"] = load_causal_lm(run.settings.model)
    model, tokenizer, ref = model_cache["model"]
    torch.manual_seed(run.settings.seed)
    rows = trl_run.problem_rows(tokenizer, run.settings, run.settings.problems)
    import ttrl.adapters.trl.fastpath as fastpath

    saved = fastpath.fast_grpo_trainer_class
    if arm.startswith("trl"):
        fastpath.fast_grpo_trainer_class = lambda: GRPOTrainer
    try:
        trainer, _ = trl_run.build_trainer(run, copy.deepcopy(model), tokenizer, ref, rows)
    finally:
        fastpath.fast_grpo_trainer_class = saved
    totals.clear()
    started = time.perf_counter()
    trainer.train()
    return (time.perf_counter() - started) / steps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=Path("examples/trl/majority_vote.yaml"))
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--checkpointing", action="store_true", help="also time TRL with gradient checkpointing on")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import logging

    import torch
    import transformers

    transformers.logging.set_verbosity_error()
    logging.getLogger("trl").setLevel(logging.ERROR)
    totals: dict[str, float] = defaultdict(float)
    instrument(totals)
    arms = ["trl", "ttrl fast path"] + (["trl, gradient checkpointing"] if args.checkpointing else [])
    seconds: dict[str, list[float]] = {arm: [] for arm in arms}
    phases: dict[str, list[dict[str, float]]] = {arm: [] for arm in arms}
    cache: dict = {}
    for round_ in range(args.rounds):
        for arm in arms:
            per_step = one_arm(args.config, args.steps, arm, totals, cache)
            seconds[arm].append(per_step)
            phases[arm].append({k: v / args.steps for k, v in totals.items()})
            print(f"round {round_ + 1}: {arm}: {per_step:.2f} s/step", file=sys.stderr, flush=True)
    print(f"config {args.config}, {args.steps} steps x {args.rounds} rounds, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; median seconds per step")
    header = ["arm", "step", *PHASES, "vs fast path"]
    print(" | ".join(header))
    fast = statistics.median(seconds["ttrl fast path"])
    for arm in arms:
        step = statistics.median(seconds[arm])
        split = [statistics.median(p.get(name, 0.0) for p in phases[arm]) for name in PHASES]
        print(" | ".join([arm, f"{step:.2f}", *(f"{v:.2f}" for v in split), f"{step / fast:.2f}x"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

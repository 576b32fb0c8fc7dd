"""``python -m ttrl.adapters.openrlhf.launch --ttrl-spec SPEC.json -- <OpenRLHF flags>``.

A thin launcher around OpenRLHF's own entry point (``openrlhf.cli.train_ppo_ray``): it starts (or joins)
Ray with ttrl's worker setup hook and the estimator spec in the job's environment, then runs OpenRLHF's
``__main__`` unchanged, so OpenRLHF parses and validates its flags itself. ``ttrl train`` runs this; it
also works under ``ray job submit -- python -m ttrl.adapters.openrlhf.launch ...`` on a cluster.
"""

from __future__ import annotations

import argparse
import os
import runpy
import sys
from pathlib import Path

from .settings import ENTRY_MODULE, SPEC_ENV

HOOK = "ttrl.adapters.openrlhf.binding.setup_worker"


def runtime_env(spec_json: str) -> dict:
    """OpenRLHF's own defaults for ``ray.init`` plus ttrl's hook and spec."""
    return {
        "env_vars": {
            "TOKENIZERS_PARALLELISM": os.environ.get("TOKENIZERS_PARALLELISM", "true"),
            "NCCL_DEBUG": os.environ.get("NCCL_DEBUG", "WARN"),
            "RAY_ENABLE_ZERO_COPY_TORCH_TENSORS": os.environ.get("RAY_ENABLE_ZERO_COPY_TORCH_TENSORS", "1"),
            SPEC_ENV: spec_json,
        },
        "worker_process_setup_hook": HOOK,
    }


def _binding_is_live() -> bool:
    """Run in a Ray worker: whether ttrl's setup hook installed the binding there."""
    from ttrl.adapters.openrlhf import binding

    return binding._SPEC is not None


def check_workers(ray) -> None:
    """Refuse to start OpenRLHF when Ray workers do not run ttrl's setup hook (e.g. a cluster whose
    job config dropped it): OpenRLHF would stop on its first step anyway, after loading every model."""
    if not ray.get(ray.remote(num_cpus=0)(_binding_is_live).remote()):
        raise SystemExit(
            "ttrl: Ray workers do not run ttrl's worker_process_setup_hook "
            f"({HOOK}), so OpenRLHF's trainer would get no estimator rewards. Start through "
            "`ttrl train` or `python -m ttrl.adapters.openrlhf.launch`, which pass it to ray.init."
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ttrl.adapters.openrlhf.launch")
    parser.add_argument("--ttrl-spec", required=True, type=Path, help="Estimator spec written by `ttrl train`.")
    parser.add_argument("openrlhf_args", nargs=argparse.REMAINDER, help="-- then OpenRLHF's flags.")
    args = parser.parse_args(argv)
    flags = args.openrlhf_args[1:] if args.openrlhf_args[:1] == ["--"] else args.openrlhf_args
    spec_json = args.ttrl_spec.read_text(encoding="utf-8")

    import ray

    # OpenRLHF's train() calls ray.init only when Ray is not yet initialised: ours wins and carries the hook.
    ray.init(address=os.environ.get("RAY_ADDRESS"), runtime_env=runtime_env(spec_json))
    check_workers(ray)
    sys.argv = [ENTRY_MODULE, *flags]
    runpy.run_module(ENTRY_MODULE, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()

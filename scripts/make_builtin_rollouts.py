"""Regenerate ttrl's built-in rollout set, ``ttrl/data/builtin_rollouts.jsonl``.

The set is what ``ttrl bench`` uses without ``--data``: real rollouts of the embedded default model
(SmolLM2-135M-Instruct) on problems ttrl writes itself (:func:`ttrl.problems.generate_problems`,
templated arithmetic and short word problems at levels 1-2), 16 per prompt, with exact per-rollout
token statistics. It goes through the same code as ``ttrl rollouts generate`` (equivalent to writing
the problems to a prompt file and running that command with the settings below), and it resumes:
rerun after an interruption and finished prompts are kept.

    python scripts/make_builtin_rollouts.py --threads 1   # ~13 min on 2 quiet CPU cores
    python scripts/make_builtin_rollouts.py --prompts 4 -n 2 --output /tmp/small.jsonl

The settings were chosen with short calibration runs so that the 135M model is right on roughly a
quarter of the rollouts (23 %), varying from prompt to prompt, which makes estimators disagree:
temperature 0.7, at most 40 new tokens (enough for the model to state a sum before answering; at 32
most responses were cut short), an instruction asking for the boxed number, and levels 1-2 (level 3,
two-digit sums and two-step problems, was right 10 % of the time). Forcing the answer at once (a
response prefix ``The answer is \\boxed{``) drops accuracy to 2-5 %: the model needs to write the
computation out. Of the per-token arrays only ``token_confidence`` (k = 20) is kept, for DeepConf's
windowed confidences (``confidence_vote``), so that the file stays well under 2 MB.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ttrl.problems import generate_problems
from ttrl.rollouts import GenerationSettings, PromptItem, run_generation

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = ROOT / "ttrl" / "data" / "builtin_rollouts.jsonl"
INSTRUCTION = "Answer with only the final number, written as \\boxed{number}."
SEED = 2026


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--prompts", type=int, default=100)
    parser.add_argument("-n", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=40)
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (1 is kinder on a shared machine).")
    parser.add_argument("--levels", default="1,2", help="problem levels of ttrl.problems (comma-separated)")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)

    import torch

    from ttrl.rollouts.transformers_backend import TransformersBackend

    if args.threads:
        torch.set_num_threads(args.threads)

    levels = [int(level) for level in args.levels.split(",")]
    problems = generate_problems(args.prompts, seed=SEED, levels=levels, prefix="ttrl-arith")
    prompts = [PromptItem(p.id, p.prompt, p.answer, p.task, {"level": p.level}) for p in problems]
    settings = GenerationSettings(
        model="smollm2-135m",
        n=args.n,
        temperature=args.temperature,
        max_new_tokens=args.max_new_tokens,
        seed=SEED,
        batch_size=args.batch_size,
        instruction=INSTRUCTION,
        token_arrays=("token_confidence",),
    )
    backend = TransformersBackend(settings.model, confidence_k=settings.topk)
    done = [0]

    def report(rollouts: int, tokens: int, seconds: float) -> None:
        done[0] += rollouts
        print(f"{done[0]} rollouts, batch {tokens} tokens in {seconds:.1f}s ({tokens / seconds:.1f} tokens/s)", flush=True)

    summary = run_generation(prompts, settings, backend, args.output, overwrite=args.overwrite, on_batch=report)
    print(f"wrote {summary.written} prompts ({summary.skipped} already there) to {args.output}: "
          f"{summary.tokens} tokens in {summary.seconds:.0f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Generation throughput of the default model (SmolLM2-135M, transformers backend), by batch size.

    .venv/bin/python benchmarks/generation_throughput.py
    .venv/bin/python benchmarks/generation_throughput.py --batch-sizes 1,8,32,64 --max-new-tokens 32 --threads 2

For each batch size the same prompt is sampled ``batch`` times at temperature 0.7, once with the
per-step statistics recorder that ``ttrl rollouts generate`` uses and once with plain
``model.generate``, side by side, so the second column is the cost of exact token statistics.
Tokens/s counts generated tokens up to each response's EOS (what lands in ``num_tokens``). CPU
figures on a shared machine vary with the load: compare columns of one run, not runs.
"""

from __future__ import annotations

import argparse
import os
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--batch-sizes", default="1,8,32,64")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--device", default="cuda" if _cuda() else "cpu")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import numpy as np
    import torch
    from transformers import GenerationConfig

    from ttrl.rollouts.transformers_backend import TransformersBackend, response_lengths

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cpu":
        print("No GPU used (none is lent to this task's run): CPU figures." if not _cuda() else "CPU figures.")
    backend = TransformersBackend(args.model, device=args.device)
    prompt = backend.format_prompt("Ana has 7 apples and gets 5 more. How many apples does Ana have now?",
                                   "Put the final answer in \\boxed{}.", True)
    print(f"model {args.model} on {args.device} ({torch.get_num_threads()} threads), "
          f"max_new_tokens {args.max_new_tokens}, temperature 0.7")
    print(f"{'batch':>6} {'tokens/s with stats':>20} {'tokens/s plain':>15} {'plain / with stats':>19}")
    for batch in [int(b) for b in args.batch_sizes.split(",")]:
        texts = [prompt] * batch
        backend.generate(texts[:1], temperature=0.7, top_p=1.0, max_new_tokens=2, seed=0)  # warm-up
        start = time.perf_counter()
        samples = backend.generate(texts, temperature=0.7, top_p=1.0, max_new_tokens=args.max_new_tokens, seed=1)
        with_stats = sum(len(s.token_ids) for s in samples) / (time.perf_counter() - start)

        inputs = backend.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(args.device)
        config = GenerationConfig(do_sample=True, temperature=0.7, top_k=0, top_p=1.0, max_new_tokens=args.max_new_tokens,
                                  eos_token_id=backend.eos_ids, pad_token_id=backend.pad_id)
        torch.manual_seed(1)
        start = time.perf_counter()
        with torch.inference_mode():
            sequences = backend.model.generate(**inputs, generation_config=config)
        elapsed = time.perf_counter() - start
        generated = sequences[:, inputs["input_ids"].shape[1]:].cpu().numpy()
        plain = float(np.sum(response_lengths(generated, backend.eos_ids))) / elapsed
        print(f"{batch:>6} {with_stats:>20.1f} {plain:>15.1f} {plain / with_stats:>19.2f}")


def _cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


if __name__ == "__main__":
    main()

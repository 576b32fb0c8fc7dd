"""Chunked token statistics vs a naive full-softmax implementation: peak extra memory and time.

    .venv/bin/python benchmarks/token_stats.py                    # T=4096, V=49152, bf16 logits, CPU
    .venv/bin/python benchmarks/token_stats.py --tokens 1024 --dtype float32 --device cuda

Each implementation runs in its own subprocess on the same seeded logits. "Extra memory" is the peak
memory the computation adds on top of the logits themselves: on CPU the growth of the process's peak
resident set size (``ru_maxrss``) during the call, on CUDA ``torch.cuda.max_memory_allocated`` minus
the memory held before the call. Both implementations are checked against each other (max abs diff).
The naive one is what one writes first: ``log_softmax`` of a float32 copy of the whole tensor, then
``p * log p`` summed, which holds several float32 copies of ``[T, V]`` at once.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time


def naive(logits, tokens, temperature):
    import torch

    logp = torch.log_softmax(logits.float() / temperature, dim=-1)
    entropy = -(logp.exp() * logp).sum(-1)
    self_certainty = -math.log(logits.shape[-1]) - logp.mean(-1)
    logprob = logp.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    confidence = -logp.topk(20, dim=-1).values.mean(-1)  # DeepConf's k = 20
    return entropy, self_certainty, logprob, confidence


def chunked(logits, tokens, temperature, chunk_size, confidence_k=20):
    from ttrl.token_stats import token_statistics

    stats = token_statistics(logits, tokens=tokens, temperature=temperature, chunk_size=chunk_size, confidence_k=confidence_k)
    return tuple(stats.arrays().values())


def _peak_rss_bytes() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def worker(args) -> None:
    import torch

    torch.manual_seed(0)
    device = torch.device(args.device)
    # Filled in slices, so that no float32 temporary of the full size raises the baseline peak.
    logits = torch.empty(args.tokens, args.vocab, device=device, dtype=getattr(torch, args.dtype))
    for start in range(0, args.tokens, 256):
        rows = logits[start : start + 256]
        rows.copy_(torch.randn(rows.shape, device=device) * 3)
    tokens = torch.randint(0, args.vocab, (args.tokens,), device=device)
    k = None if args.impl == "chunked_without_confidence" else 20
    fn = naive if args.impl == "naive" else (lambda lg, tk, t: chunked(lg, tk, t, args.chunk_size, k))
    fn(logits[:8], tokens[:8], args.temperature)  # warm up kernels and lazy imports outside the measurement
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    else:
        before = _peak_rss_bytes()
    start = time.perf_counter()
    out = fn(logits, tokens, args.temperature)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    extra = (torch.cuda.max_memory_allocated() if device.type == "cuda" else _peak_rss_bytes()) - before
    torch.save([t.float().cpu() for t in out], args.save)
    print(json.dumps({"seconds": seconds, "extra_bytes": max(extra, 0)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=4096)
    parser.add_argument("--vocab", type=int, default=49152)
    parser.add_argument("--dtype", default="bfloat16", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--chunk-size", type=int, default=256)
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available, and cpu too)")
    parser.add_argument("--impl", choices=["naive", "chunked", "chunked_without_confidence"], help=argparse.SUPPRESS)
    parser.add_argument("--save", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.impl:
        worker(args)
        return

    import tempfile

    import torch

    devices = [args.device] if args.device else (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    if not torch.cuda.is_available():
        print("No CUDA GPU on this machine: CPU figures only (no GPU was lent to this task's run).")
    size = args.tokens * args.vocab
    print(f"T={args.tokens} V={args.vocab} logits {args.dtype} ({size * torch.finfo(getattr(torch, args.dtype)).bits / 8 / 2**20:.0f} MiB), "
          f"temperature {args.temperature}, chunk {args.chunk_size} rows; float32 [T, V] would be {size * 4 / 2**20:.0f} MiB")
    for device in devices:
        results = {}
        with tempfile.TemporaryDirectory() as tmp:
            for impl in ("naive", "chunked", "chunked_without_confidence"):
                save = f"{tmp}/{impl}.pt"
                cmd = [sys.executable, __file__, "--impl", impl, "--save", save, "--device", device,
                       "--tokens", str(args.tokens), "--vocab", str(args.vocab), "--dtype", args.dtype,
                       "--temperature", str(args.temperature), "--chunk-size", str(args.chunk_size)]
                done = subprocess.run(cmd, capture_output=True, text=True, check=True)
                results[impl] = json.loads(done.stdout.strip().splitlines()[-1])
                results[impl]["out"] = torch.load(save)
        diff = max(float((a - b).abs().max()) for a, b in zip(results["naive"]["out"], results["chunked"]["out"], strict=True))
        n, c = results["naive"], results["chunked"]
        print(f"\n[{device}] {'':10} {'naive':>12} {'chunked':>12} {'ratio naive/chunked':>22}")
        print(f"[{device}] {'extra MiB':10} {n['extra_bytes'] / 2**20:12.0f} {c['extra_bytes'] / 2**20:12.0f} "
              f"{n['extra_bytes'] / max(c['extra_bytes'], 1):22.1f}")
        print(f"[{device}] {'seconds':10} {n['seconds']:12.3f} {c['seconds']:12.3f} {n['seconds'] / c['seconds']:22.2f}")
        print(f"[{device}] max |naive - chunked| over entropy, self-certainty, logprob, confidence: {diff:.2e}")
        plain = results["chunked_without_confidence"]["seconds"]
        print(f"[{device}] chunked without token confidence {plain:.3f} s: confidence (top-20) adds "
              f"{c['seconds'] / plain - 1:+.0%}")


if __name__ == "__main__":
    main()

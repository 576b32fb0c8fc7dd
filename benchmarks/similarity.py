"""ROUGE-L F1: ttrl's rapidfuzz-based :func:`ttrl.core.similarity.rouge_l` against Google's ``rouge-score``
and the plain dynamic programme, on the same pairs, in one run.

    python benchmarks/similarity.py                 # pairs from the built-in free-form/code rollouts
    python benchmarks/similarity.py --long 400      # plus synthetic pairs of 400-word texts

It first checks that the three give the same F1 on every pair (rouge-score's tokeniser keeps only
``[a-z0-9]``; the pairs are compared on ASCII text, where the tokenisations agree), then prints the
time per pair of each and the ratios. ``rouge-score`` is in the ``dev`` extra; without it only the
two ttrl implementations are compared.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import time
from pathlib import Path

from ttrl.core import similarity

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "ttrl" / "data" / "similarity_rollouts.jsonl"


def real_pairs(path: Path) -> list[tuple[str, str]]:
    pairs = []
    for line in path.read_text(encoding="utf-8").splitlines():
        texts = [r["text"].encode("ascii", "ignore").decode() for r in json.loads(line)["rollouts"]]
        pairs.extend(itertools.combinations(texts, 2))
    return pairs


def long_pairs(words: int, count: int = 50) -> list[tuple[str, str]]:
    rng = random.Random(0)
    vocabulary = [f"w{k}" for k in range(300)]
    return [(" ".join(rng.choices(vocabulary, k=words)), " ".join(rng.choices(vocabulary, k=words))) for _ in range(count)]


def plain_rouge_l(a: str, b: str) -> float:
    x, y = similarity.text_tokens(a), similarity.text_tokens(b)
    return 0.0 if not x or not y else 2.0 * similarity.lcs_length(x, y) / (len(x) + len(y))


def timed(function, pairs, repeat: int) -> tuple[list[float], float]:
    values = [function(a, b) for a, b in pairs]
    started = time.perf_counter()
    for _ in range(repeat):
        for a, b in pairs:
            function(a, b)
    return values, (time.perf_counter() - started) / (repeat * len(pairs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help="rollout file whose within-group pairs are compared")
    parser.add_argument("--long", type=int, default=0, help="also time synthetic pairs of this many words")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    sets = {f"pairs of {args.data.name}": real_pairs(args.data)}
    if args.long:
        sets[f"{args.long}-word texts"] = long_pairs(args.long)
    implementations = {"ttrl (rapidfuzz)": similarity.rouge_l, "plain DP": plain_rouge_l}
    try:
        from rouge_score import rouge_scorer

        scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
        implementations["rouge-score"] = lambda a, b: scorer.score(a, b)["rougeL"].fmeasure
    except ImportError:
        print("rouge-score is not installed (pip install rouge-score): comparing ttrl's two implementations only")
    for name, pairs in sets.items():
        results = {label: timed(function, pairs, args.repeat) for label, function in implementations.items()}
        reference = results["ttrl (rapidfuzz)"][0]
        print(f"{name}: {len(pairs)} pairs")
        for label, (values, seconds) in results.items():
            worst = max(abs(v - r) for v, r in zip(values, reference))
            ratio = seconds / results["ttrl (rapidfuzz)"][1]
            print(f"  {label:18s} {seconds * 1e6:10.1f} us/pair  {ratio:7.1f}x ttrl  max |F1 - ttrl| {worst:.2e}")


if __name__ == "__main__":
    main()

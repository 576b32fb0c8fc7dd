"""Answer clustering: naive math-verify vs. TTRL's string Counter vs. ttrl's answer engine.

    .venv/bin/python benchmarks/answer_engine.py [--groups 9] [--rollouts 64] [--batch 512] [--seed 0]

Groups are built from the references of ``../shared/data/ttrl/MATH-TTT.json``: each group of 64
answers mixes the reference, equivalent rewrites of it (``0.5``, ``\\frac12``, ``1/2``,
``\\dfrac{1}{2}``, ``5\\%`` for 5, ``\\frac{2}{4}``; spacing, ``\\left``/``\\right``, ``\\dfrac``; reordered
elements of sets, never of tuples), wrong answers (off by one, doubled, negated, a 7-digit near miss
that math-verify's rounding confuses with the reference) and a few rollouts without an answer. The
true partition is known by construction. One run prints, side by side on the same groups:

(a) naive: math-verify ``parse`` of every answer and ``verify`` on every pair, union-find;
(b) TTRL's reference approach: a Counter over normalised strings (a reimplementation of the MATH
    ``strip_string`` normaliser that TTRL's grader uses);
(c) ttrl: ``AnswerEngine.cluster`` (fast paths, then sandboxed math-verify against class
    representatives), with warm workers.

Correctness is measured on pairs of answered rollouts (same class <=> same true class) and as the
recall of equivalent rewrites (rollouts equal to the reference that land in the reference's class).
Then (c) alone runs a training-sized batch (``--batch`` groups x 64) with 1 and 2 caller threads,
and the worst groups we could construct (hundreds of distinct symbolic answers, distinct equations,
long expressions, power towers that each need a time limit), whose cost the per-group budget bounds.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path

from ttrl.core.answers import AnswerEngine, Budget
from ttrl.core.answers.normalize import normalize_answer, plain_number
from ttrl.core.answers.sandbox import get_pool, shutdown
from ttrl.core.plugins import load_plugins

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ttrl" / "MATH-TTT.json"


# -- building groups ----------------------------------------------------------------------------


def _latex_fraction(value: Fraction, *, command: str = "\\frac") -> str:
    sign = "-" if value < 0 else ""
    return f"{sign}{command}{{{abs(value.numerator)}}}{{{value.denominator}}}"


def _decimal(value: Fraction) -> str | None:
    denominator = value.denominator
    for prime in (2, 5):
        while denominator % prime == 0:
            denominator //= prime
    if denominator != 1:
        return None
    text = f"{float(value):.10f}".rstrip("0").rstrip(".")
    return text if Fraction(text) == value else None


def numeric_rewrites(value: Fraction) -> list[str]:
    """Spellings of ``value`` a model writes: decimal, fractions, percentage, unreduced fraction."""
    forms = [_latex_fraction(value), f"{value.numerator}/{value.denominator}", _latex_fraction(value, command="\\dfrac"),
             _latex_fraction(Fraction(value.numerator * 2, value.denominator * 2)) if value.denominator > 1 else None,
             f"\\frac{{{2 * value.numerator}}}{{2}}" if value.denominator == 1 else None]
    decimal = _decimal(value)
    if decimal is not None:
        forms.append(decimal)
    if value.denominator == 1:
        forms.append(f"{value.numerator}\\%")  # a percent sign does not change the answer (the default convention)
    if value.denominator == 1:
        forms.append(f"{value.numerator}.0")
    if value.denominator > 1 and value.numerator < value.denominator and len(str(value.denominator)) == 1 and 0 < value.numerator < 10:
        forms.append(f"\\frac{value.numerator}{value.denominator}")
    return [f for f in dict.fromkeys(forms) if f]


_SET = re.compile(r"^\\\{(.*)\\\}$")


def latex_rewrites(reference: str) -> list[str]:
    """Equivalent spellings of a non-numeric reference: spacing, \\left/\\right, \\dfrac, set order."""
    forms = [reference.replace(" ", ""), reference.replace("\\frac", "\\dfrac"), reference.replace("\\left", "").replace("\\right", "")]
    if "," in reference and reference.startswith(("(", "[")) and "\\left" not in reference:
        forms.append("\\left" + reference[:-1] + "\\right" + reference[-1])
    match = _SET.match(reference.replace(" ", ""))
    if match and "{" not in match.group(1):
        elements = match.group(1).split(",")
        forms.append("\\{" + ",".join(reversed(elements)) + "\\}")
    return [f for f in dict.fromkeys(forms) if f != reference]


def wrong_answers(reference: str, value: Fraction | None) -> list[str]:
    if value is not None:
        wrong = [value + 1, value * 2 if value else Fraction(7), -value if value else Fraction(-3), value + Fraction(1, 3)]
        forms = [_decimal(w) or _latex_fraction(w) for w in wrong if w != value]
        if value.denominator == 1 and abs(value) < 10**6:
            forms.append(f"{value}.0000003")  # a near miss: equal to the reference at 6 decimals
        return forms
    return [f"{reference}+1", f"2\\left({reference}\\right)+3", f"{reference}-7"]


def build_group(reference: str, rng: random.Random, n: int) -> tuple[list[str | None], list[int]]:
    """``n`` answers and their true class (0 = the reference, -1 = no answer, k > 0 = wrong answer k)."""
    value = plain_number(normalize_answer(reference))
    rewrites = numeric_rewrites(value) if value is not None else latex_rewrites(reference)
    wrong = wrong_answers(reference, value)
    answers: list[str | None] = []
    truth: list[int] = []
    for _ in range(n):
        draw = rng.random()
        if draw < 0.05:
            answers.append(None)
            truth.append(-1)
        elif draw < 0.25:
            answers.append(reference)
            truth.append(0)
        elif draw < 0.50 and rewrites:
            answers.append(rng.choice(rewrites))
            truth.append(0)
        else:
            k = rng.randrange(len(wrong))
            answers.append(wrong[k])
            truth.append(k + 1)
    return answers, truth


# -- the three clusterings ----------------------------------------------------------------------


def naive_clusters(answers: list[str | None]) -> list[int]:
    """math-verify on every pair, union-find: what a first implementation does."""
    from math_verify import parse, verify

    parsed = [parse(f"${a}$") if a is not None else None for a in answers]
    parent = list(range(len(answers)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(answers)):
        for j in range(i + 1, len(answers)):
            if parsed[i] is None or parsed[j] is None:
                continue
            if answers[i] == answers[j] or verify(parsed[i], parsed[j]):
                parent[find(i)] = find(j)
    return [find(i) if a is not None else -1 for i, a in enumerate(answers)]


def _strip_string(text: str) -> str:
    """The MATH (Hendrycks) answer normaliser that TTRL's grader applies before comparing strings."""
    text = text.replace("\n", "").replace("\\!", "").replace("\\\\", "\\")
    text = text.replace("tfrac", "frac").replace("dfrac", "frac").replace("\\left", "").replace("\\right", "")
    text = text.replace("^{\\circ}", "").replace("^\\circ", "").replace("\\$", "")
    text = re.sub(r"\\text\{\s*[a-zA-Z ]*\}$", "", text).replace("\\%", "").replace("%", "")
    text = text.replace(" .", " 0.").replace("{.", "{0.")
    if text.startswith("."):
        text = "0" + text
    if len(text.split("=")) == 2 and len(text.split("=")[0]) <= 2:
        text = text.split("=")[1]
    text = re.sub(r"\\sqrt(\w)", r"\\sqrt{\1}", text).replace(" ", "")
    text = re.sub(r"\\frac(\d)(\d)", r"\\frac{\1}{\2}", text)
    text = re.sub(r"\\frac(\d)\{", r"\\frac{\1}{", text)
    text = re.sub(r"\\frac\{([^{}]*)\}(\d)", r"\\frac{\1}{\2}", text)
    if text == "0.5":
        text = "\\frac{1}{2}"
    match = re.fullmatch(r"(-?\d+)/(\d+)", text)
    if match:
        text = f"\\frac{{{match.group(1)}}}{{{match.group(2)}}}"
    return text


def counter_clusters(answers: list[str | None]) -> list[int]:
    """TTRL's reference: a Counter over normalised strings (equal strings = one class)."""
    ids: dict[str, int] = {}
    out = []
    for answer in answers:
        if answer is None:
            out.append(-1)
            continue
        out.append(ids.setdefault(_strip_string(answer), len(ids)))
    return out


# -- scoring ------------------------------------------------------------------------------------


def score(groups, clusterings) -> dict[str, float]:
    agree = pairs = rewrite_hits = rewrites = exact = 0
    for (answers, truth), ids in zip(groups, clusterings):
        answered = [i for i, t in enumerate(truth) if t >= 0]
        for x in range(len(answered)):
            for y in range(x + 1, len(answered)):
                i, j = answered[x], answered[y]
                pairs += 1
                agree += (ids[i] == ids[j]) == (truth[i] == truth[j])
        reference_rollouts = [i for i in answered if truth[i] == 0]
        if reference_rollouts:
            anchor = ids[reference_rollouts[0]]
            for i in reference_rollouts[1:]:
                if answers[i] != answers[reference_rollouts[0]]:
                    rewrites += 1
                    rewrite_hits += ids[i] == anchor
        exact += all((ids[answered[x]] == ids[answered[y]]) == (truth[answered[x]] == truth[answered[y]])
                     for x in range(len(answered)) for y in range(x + 1, len(answered)))
    return {"pair_accuracy": agree / pairs, "rewrite_recall": rewrite_hits / max(rewrites, 1),
            "exact_partitions": exact / len(groups)}


def timed(function, groups):
    started = time.perf_counter()
    out = [function(answers) for answers, _ in groups]
    return out, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=9, help="groups for the side-by-side comparison")
    parser.add_argument("--rollouts", type=int, default=64)
    parser.add_argument("--batch", type=int, default=512, help="groups in the training-sized batch")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--worst-only", action="store_true", help="only the worst-group costs")
    args = parser.parse_args()
    if not DATA.is_file():
        print(f"MATH-TTT.json not found at {DATA} (expected ../shared/data beside the repository)", file=sys.stderr)
        return 2
    references = [row["answer"] for row in json.loads(DATA.read_text())]
    rng = random.Random(args.seed)
    # A third of the groups have a non-numeric reference (a fifth of MATH-TTT has one), so that the
    # semantic checker, not only the rational fast path, is measured.
    symbolic = [r for r in references if plain_number(normalize_answer(r)) is None]
    numeric = [r for r in references if plain_number(normalize_answer(r)) is not None]
    picked = rng.sample(symbolic, args.groups // 3) + rng.sample(numeric, args.groups - args.groups // 3)
    groups = [build_group(ref, rng, args.rollouts) for ref in picked]

    registry = load_plugins(entry_points=False).registry
    if args.worst_only:
        worst_groups(registry, args.rollouts)
        return 0
    started = time.perf_counter()
    get_pool().start()
    print(f"start-up of {get_pool().size} checker workers (once per process, not counted below): "
          f"{time.perf_counter() - started:.2f}s")
    engine = AnswerEngine(registry, timeout_seconds=5.0)
    import math_verify  # noqa: F401 - import time is not part of (a)'s timing

    naive, t_naive = timed(naive_clusters, groups)
    counter, t_counter = timed(counter_clusters, groups)
    ttrl_classes, t_ttrl = timed(lambda answers: engine.cluster(answers, "math"), groups)
    ttrl = [c.class_ids for c in ttrl_classes]
    rows = [("(a) naive math-verify, all pairs", t_naive, score(groups, naive)),
            ("(b) TTRL Counter of strings", t_counter, score(groups, counter)),
            ("(c) ttrl AnswerEngine", t_ttrl, score(groups, ttrl))]
    n = len(groups)
    print(f"\n{n} groups x {args.rollouts} rollouts from MATH-TTT references (seed {args.seed})")
    print(f"{'method':36s} {'ms/group':>9s} {'pair acc':>9s} {'rewrites':>9s} {'exact':>6s}")
    for name, seconds, s in rows:
        print(f"{name:36s} {1000 * seconds / n:9.1f} {s['pair_accuracy']:9.4f} {s['rewrite_recall']:9.3f} {s['exact_partitions']:6.2f}")
    print(f"speed-up (a)/(c): {t_naive / t_ttrl:.0f}x;  (c)/(b) time: {t_ttrl / max(t_counter, 1e-9):.1f}x")
    trips = [c.diagnostics["round_trips"] for c in ttrl_classes]
    print(f"(c) groups with zero worker round trips: {sum(t == 0 for t in trips)}/{n}; "
          f"verify calls {sum(c.diagnostics['verify_calls'] for c in ttrl_classes)} vs (a) {n * args.rollouts * (args.rollouts - 1) // 2}")

    batch_refs = [rng.choice(references) for _ in range(args.batch)]
    batch = [build_group(ref, rng, args.rollouts)[0] for ref in batch_refs]
    total = args.batch * args.rollouts
    print(f"\ntraining-sized batch: {args.batch} groups x {args.rollouts} rollouts = {total} answers")
    for threads in (1, 2):
        # Empty caches, in the caller and in fresh workers: no help from earlier runs.
        shutdown()
        get_pool().start()
        fresh = AnswerEngine(registry, timeout_seconds=5.0)
        started = time.perf_counter()
        if threads == 1:
            out = [fresh.cluster(answers, "math") for answers in batch]
        else:
            with ThreadPoolExecutor(threads) as executor:
                out = list(executor.map(lambda answers: fresh.cluster(answers, "math"), batch))
        seconds = time.perf_counter() - started
        zero = sum(c.diagnostics["round_trips"] == 0 for c in out)
        trips = sum(c.diagnostics["round_trips"] for c in out)
        timeouts = sum(c.diagnostics["timeouts"] for c in out)
        print(f"  {threads} caller thread(s), {get_pool().size} workers: {seconds:.2f}s, {total / seconds:,.0f} answers/s, "
              f"{1000 * seconds / args.batch:.1f} ms/group; zero-round-trip groups {zero}/{args.batch}, "
              f"round trips {trips}, timeouts {timeouts}")
    worst_groups(registry, args.rollouts)
    return 0


def worst_groups(registry, n: int) -> None:
    """The costliest groups we could construct, each of ``8 * n`` rollouts (512 by default)."""
    size = 8 * n
    cases = {
        "distinct polynomials": [f"\\sqrt{{{i}}}x^{{{i % 7 + 2}}}+{i}y-{i % 5}z" for i in range(size)],
        "distinct equations": [f"{i}x+{i % 9 + 1}y={i + 3}" for i in range(size)],
        "distinct long expressions": ["+".join(f"\\frac{{{i + k}}}{{x+{k}}}" for k in range(40)) for i in range(size)],
        "power towers": [f"{i + 2}^{{{i + 3}^{{{i + 4}^{{{i + 5}}}}}}}" for i in range(size)],
        "near-equal decimals": [f"0.{'3' * (4 + i % 12)}{i}" for i in range(size)] + ["\\frac13"],
    }
    print(f"\nworst groups: {size} rollouts each, default budget {Budget()}")
    for name, answers in cases.items():
        shutdown()
        get_pool().start()
        engine = AnswerEngine(registry, timeout_seconds=5.0)
        started = time.perf_counter()
        classes = engine.cluster(answers, "math")
        seconds = time.perf_counter() - started
        d = classes.diagnostics
        print(f"  {name:26s} {seconds:6.2f}s  classes {classes.num_classes:4d}  checker requests {d['round_trips']:4d}  "
              f"degraded: {'yes' if d.get('degraded') else 'no'}")
    answers = cases["distinct polynomials"][: n * 2]
    shutdown()
    get_pool().start()
    unbounded = AnswerEngine(registry, timeout_seconds=5.0, budget=Budget(requests=10**9, seconds=1e9))
    started = time.perf_counter()
    classes = unbounded.cluster(answers, "math")
    print(f"  without a budget, {len(answers)} distinct polynomials: {time.perf_counter() - started:.2f}s, "
          f"{classes.diagnostics['round_trips']} checker requests")


if __name__ == "__main__":
    sys.exit(main())

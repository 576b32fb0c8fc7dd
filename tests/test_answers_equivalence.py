"""Answer equivalence: truth tables (including math-verify's known false equivalences), clustering
into classes, diagnostics, and timeouts that work from worker threads."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time

import pytest

from ttrl.core.answers import AnswerEngine, normalize_answer
from ttrl.core.answers.normalize import plain_number
from ttrl.core.answers.sandbox import CheckerPool
from ttrl.core.plugins import load_plugins


@pytest.fixture(scope="module")
def registry():
    return load_plugins(entry_points=False).registry


@pytest.fixture(scope="module")
def engine(registry):
    return AnswerEngine(registry, timeout_seconds=5.0)


EQUIVALENT = [
    # fast paths: normalisation and exact rationals
    (r"\frac12", "0.5"),
    (r"\dfrac{1}{2}", "1/2"),
    (r"50\%", "50"),  # percent convention "value" (the default)
    (r"\left( 3, \frac{\pi}{2} \right)", r"(3,\frac{\pi}{2})"),
    ("x=5", "5"),
    ("1,000", "1000"),
    (r"90^\circ", "90"),
    (r"10\text{ cm}", "10"),
    (r"\{1,2\}", r"\{2, 1\}"),
    ("1,-2", "-2,1"),
    (r"\text{Evelyn}", "evelyn"),
    ("-0.25", r"-\frac{1}{4}"),
    # math-verify
    (r"3\sqrt{13}", r"\sqrt{117}"),
    ("6 - 5i", "-5i+6"),
    ("p - q", "-q + p"),
    (r"\frac{\pi}{2}", r"\pi/2"),
    ("x^2-1", "(x-1)(x+1)"),
    ("x+y=2", "2x+2y=4"),
    (r"\sqrt{2}/2", r"\frac{1}{\sqrt{2}}"),
    (r"\begin{pmatrix} -1/3 \\ 2/3 \end{pmatrix}", r"\begin{pmatrix}-\frac13\\ \frac{4}{6}\end{pmatrix}"),
    (r"\{\sqrt{2}, \pi\}", r"\{\pi, \frac{2}{\sqrt{2}}\}"),
    (r"(-\infty, 0]", r"\left(-\infty,0\right]"),
    # rounded decimals against exact values (Conventions.decimals="rounded", the default)
    ("0.333333", r"\frac{1}{3}"),
    ("0.3333", r"\frac13"),
    ("0.0833333333333333", r"\frac{1}{12}"),
    ("3.14159", r"\pi"),
    (r"\frac{\pi}{2}", "1.5708"),
    ("0.6666", r"\frac{2}{3}"),  # truncated rather than rounded
]

NOT_EQUIVALENT = [
    # math-verify's known false equivalences (it rounds to 6 significant digits)
    ("1/2^{99}", "1/2^{98}"),
    ("1/2004!", "1/2006!"),
    (r"1-\frac{1}{e}", r"1+\frac{1}{e}"),
    ("3x-1y+13=0", "x+y=2"),
    # ... and the same inside tuples, intervals, sets and matrices
    ("(1/2^{99}, 1)", "(1/2^{98}, 1)"),
    (r"\{1/2^{99}, 1\}", r"\{1/2^{98}, 1\}"),
    (r"\begin{pmatrix} 1/2^{99} \\ 1 \end{pmatrix}", r"\begin{pmatrix} 1/2^{98} \\ 1 \end{pmatrix}"),
    # order matters in tuples; sets are not tuples
    ("(1,2)", "(2,1)"),
    ("(1,2)", r"\{1,2\}"),
    ("[1,2)", "(1,2)"),
    # a decimal equals an exact value only when it is that value rounded (or truncated) at its
    # written precision, with at least 4 significant digits (Conventions.decimals="rounded")
    ("0.333", r"\frac{1}{3}"),
    ("0.3334", r"\frac{1}{3}"),
    ("3.14", r"\pi"),
    ("3.1415", r"\sqrt{10}"),
    ("2.0001", "2"),
    ("x^2+1", "(x-1)(x+1)"),
    ("2", "20"),
    (r"\text{Evelyn}", r"\text{Bob}"),
    ("x=5", "y=6"),
]


@pytest.mark.parametrize(("a", "b"), EQUIVALENT)
def test_equivalent_answers(engine, a, b):
    assert engine.equivalent(a, b, "math")
    assert engine.equivalent(b, a, "math")  # symmetric


@pytest.mark.parametrize(("a", "b"), NOT_EQUIVALENT)
def test_answers_that_are_not_equivalent(engine, a, b):
    assert not engine.equivalent(a, b, "math")
    assert not engine.equivalent(b, a, "math")


def test_no_answer_is_equivalent_to_nothing(engine):
    assert not engine.equivalent(None, None, "math")
    assert not engine.equivalent("2", None, "math")


@pytest.mark.parametrize(
    ("text", "value"),
    [("0.5", (1, 2)), (r"\frac{2}{4}", (1, 2)), ("50\\%", (50, 1)), ("-3/6", (-1, 2)), (r"-\frac{-1}{2}", (1, 2)),
     ("12,345", (12345, 1)), ("1e9", None), ("2^{10}", None), ("1/0", None), ("1" * 300, None), ("12,34", (617, 50)),
     ("0,111", (111, 1000)), ("1,2", None), ("32, 349", None)],
)
def test_plain_numbers_are_exact_rationals_and_nothing_bigger(text, value):
    result = plain_number(normalize_answer(text))
    assert (None if result is None else (result.numerator, result.denominator)) == value


def test_compare_modes_of_the_other_tasks(engine):
    assert engine.equivalent("(b)", "B", "multiple_choice")
    assert not engine.equivalent("B", "C", "multiple_choice")
    assert engine.equivalent("1,000", "1000.0", "number")
    assert not engine.equivalent("1000", "1000.5", "number")
    # `number` never asks math-verify: expressions are only equal as strings
    classes = engine.cluster(["2+2", "4", "2+2"], "number")
    assert classes.class_ids == [0, 1, 0]
    assert classes.diagnostics["round_trips"] == 0


def test_cluster_numbers_classes_in_order_of_first_appearance(engine):
    answers = ["7", r"\frac12", None, "0.5", "7.0", r"\dfrac{1}{2}", "", "1/2", "\\frac{2}{4}", "8"]
    classes = engine.cluster(answers, "math")
    assert classes.class_ids == [0, 1, -1, 1, 0, 1, -1, 1, 1, 2]
    # labels: each class's most frequent normalised spelling, the shortest among equals
    assert classes.representatives == ["7", r"\frac{1}{2}", "8"]
    assert classes.sizes() == [2, 5, 1]
    diagnostics = classes.diagnostics
    assert diagnostics["no_answer"] == 2
    # plain numbers are decided by exact rationals: no process round trip at all
    assert diagnostics["round_trips"] == 0 and diagnostics["verify_calls"] == 0
    # \dfrac{1}{2} is \frac12 after normalisation; 0.5, 1/2 and 50% are the same exact rational
    assert diagnostics["classes"][1] == {"size": 5, "key": "number", "first": 1, "normalised": 1, "same_number": 3}


def test_cluster_parses_each_distinct_string_once_and_verifies_only_undecided_pairs(registry):
    engine = AnswerEngine(registry)  # fresh caches
    answers = [r"\frac{\pi}{2}", "3", r"\frac{\pi}{2}", r"\pi/2", "3", r"\frac{\pi }{2}", "4"]
    classes = engine.cluster(answers, "math")
    assert classes.class_ids == [0, 1, 0, 0, 1, 0, 2]
    d = classes.diagnostics
    assert d["distinct_strings"] == 5 and d["distinct_keys"] == 4
    # each distinct answer is parsed once (4 requests); fingerprints (values at fixed points) tell
    # "3" and "4" from pi/2 and "\\pi/2" from "3", so only "\\pi/2" vs pi/2 is checked (1 request)
    assert d["round_trips"] == 5 and d["semantic_checks"] == 1 and d["fingerprinted"] == 3
    assert d["classes"][0] == {"size": 4, "key": "text", "first": 1, "exact_string": 1, "normalised": 1, "verify": 1, "checks": 1}
    again = engine.cluster(answers, "math")
    assert again.class_ids == classes.class_ids
    assert again.diagnostics["round_trips"] == 0 and again.diagnostics["cache_hits"] == 3


def test_false_equivalences_never_merge_classes(engine):
    classes = engine.cluster(["1/2^{99}", "1/2^{98}", "1/2004!", "1/2006!", "3x-1y+13=0", "x+y=2"], "math")
    assert classes.class_ids == [0, 1, 2, 3, 4, 5]
    assert classes.diagnostics["vetoes"] >= 2


def test_classify_uses_pre_extracted_answers_and_the_task(engine):
    from ttrl.core.data import Rollout, RolloutGroup

    group = RolloutGroup(
        id="g",
        prompt="p",
        task="multiple_choice",
        rollouts=[Rollout("The answer is (B)."), Rollout("**b**", answer="C"), Rollout("Answer: b"), Rollout("hmm")],
    )
    classes = engine.classify(group)
    assert classes.answers == ["B", "C", "B", None]
    assert classes.class_ids == [0, 1, 0, -1]


# -- timeouts from any thread -------------------------------------------------------------------

TOWER = "9^{9^{9^{9}}}"


def test_timeout_from_a_worker_thread_counts_as_not_equivalent(registry):
    engine = AnswerEngine(registry, timeout_seconds=1.0)
    engine.equivalent("1", "x", "math")  # start a worker outside the timed part
    results = {}

    def work():
        started = time.monotonic()
        results["classes"] = engine.cluster([TOWER, "2", TOWER, r"\sqrt{4}"], "math")
        results["seconds"] = time.monotonic() - started

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(timeout=30)
    assert not thread.is_alive()
    classes = results["classes"]
    assert classes.class_ids == [0, 1, 0, 1]  # the tower is alone; 2 = sqrt(4) still works
    assert classes.diagnostics["timeouts"] == 1  # parsed once, then never sent again
    assert results["seconds"] < 1.0 + 3.0


def test_timeout_through_asyncio_to_thread_like_openrlhf(registry):
    engine = AnswerEngine(registry, timeout_seconds=1.0)

    async def reward():
        return await asyncio.to_thread(engine.equivalent, "10^{10^{10^{10}}}!", "1", "math")

    started = time.monotonic()
    assert asyncio.run(reward()) is False
    assert time.monotonic() - started < 1.0 + 5.0  # includes a worker's start-up


def test_a_stuck_worker_is_killed_and_replaced(registry):
    """A worker that ignores its own alarm (here: stopped by SIGSTOP, as if stuck in C code) is killed
    at the caller's deadline; the next request gets a fresh worker."""
    pool = CheckerPool(size=1)
    try:
        engine = AnswerEngine(registry, timeout_seconds=1.0, pool=pool)
        assert engine.equivalent(r"\sqrt{4}", "x", "math") is False
        (stuck,) = pool.pids()
        os.kill(stuck, signal.SIGSTOP)
        started = time.monotonic()
        assert engine.equivalent("y^2", "y*y", "math") is False  # timed out
        assert time.monotonic() - started < 1.0 + 2.0  # the limit, plus killing and reaping
        assert pool.killed == 1
        assert engine.equivalent("y^2", "y*y", "math") is True  # a new worker answers
        assert pool.pids() and pool.pids()[0] != stuck
    finally:
        pool.shutdown()
    assert not pool.pids()


def test_engine_is_shared_safely_between_threads(engine):
    answers = [r"\frac{\pi}{2}", r"\pi/2", "3", r"\frac{3}{1}", r"\sqrt{9}", "x+1", "1+x"]
    expected = engine.cluster(answers, "math").class_ids
    outcomes = []

    def work():
        outcomes.append(AnswerEngine(engine.registry).cluster(answers, "math").class_ids)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert outcomes == [expected] * 6
    assert expected == [0, 0, 1, 1, 1, 2, 2]


def test_a_group_of_many_distinct_answers_costs_a_few_requests_not_one_per_pair(registry):
    """Distinct answers are parsed in batches and told apart by their fingerprints: 20 distinct
    polynomials (190 pairs) cost a couple of requests; equal ones still join."""
    engine = AnswerEngine(registry)
    answers = [f"x^{{{k}}}+{k}" for k in range(2, 22)] + ["x^{2}+2", "2+x^2"]
    classes = engine.cluster(answers, "math")
    d = classes.diagnostics
    assert classes.num_classes == 20 and classes.class_ids[-1] == classes.class_ids[0]
    assert d["round_trips"] <= 4 and d["fingerprinted"] >= 190 - 20
    assert "degraded" not in d

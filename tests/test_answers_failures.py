"""Failures are never silent, and a group's cost is bounded: a checker that cannot start, a worker
that dies, a group past its budget are counted in diagnostics and ``health()``, said in ``explain()``,
and a checker that keeps failing to start stops being retried and warns (the CLI prints it)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import warnings

import pytest

from ttrl.core.answers import AnswerEngine, Budget
from ttrl.core.answers.sandbox import MAX_START_FAILURES, AnswerCheckerWarning, CheckerPool
from ttrl.core.plugins import load_plugins

SYMBOLIC = [r"\frac{\pi}{2}", r"\pi/2", "x+1", "1+x", r"\sqrt{2}", r"2^{1/2}"]


@pytest.fixture(scope="module")
def registry():
    return load_plugins(entry_points=False).registry


@pytest.fixture
def broken_math_verify(tmp_path, monkeypatch):
    """A ``math_verify`` that cannot be imported, first on the path of every worker started now."""
    package = tmp_path / "shadow" / "math_verify"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("raise ImportError('math_verify is broken in this environment')\n")
    monkeypatch.setenv("PYTHONPATH", str(package.parent) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return package.parent


def test_a_checker_that_cannot_start_is_reported_and_not_retried(registry, broken_math_verify):
    pool = CheckerPool(size=1)
    engine = AnswerEngine(registry, timeout_seconds=2.0, pool=pool)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        classes = engine.cluster([*SYMBOLIC, "0.5", r"\frac12"], "math")
    assert pool.start_failures == MAX_START_FAILURES
    assert pool.unavailable and "could not start" in pool.unavailable
    assert [w for w in caught if issubclass(w.category, AnswerCheckerWarning)], "one warning for the user"
    d = classes.diagnostics
    assert d["failures"] >= MAX_START_FAILURES and "checker_unavailable" in d
    assert classes.class_ids[-1] == classes.class_ids[-2]  # the fast paths still work
    health = engine.health()
    assert health["checker_unavailable"] == pool.unavailable and health["failures"] >= MAX_START_FAILURES
    # no further start attempts: later comparisons fail at once and say why
    started = time.monotonic()
    verdict = engine.explain("y^2", "y*y", "math")
    assert time.monotonic() - started < 0.5
    assert pool.start_failures == MAX_START_FAILURES
    assert verdict.failed and not verdict.equivalent and "could not start" in verdict.reason
    pool.shutdown()


def test_the_cli_warns_when_the_checker_cannot_start(tmp_path, broken_math_verify):
    rollouts = tmp_path / "rollouts.jsonl"
    texts = [rf"So the answer is $\boxed{{{a}}}$." for a in SYMBOLIC]
    rollouts.write_text(json.dumps({"id": "g", "prompt": "p", "rollouts": [{"text": t} for t in texts]}) + "\n")
    out = tmp_path / "estimates.jsonl"
    env = {**os.environ, "TTRL_ANSWER_WORKERS": "1", "TTRL_ANSWER_WORKER_STARTUP": "20"}
    done = subprocess.run(
        [sys.executable, "-m", "ttrl", "estimate", "--data", str(rollouts), "--estimator", "majority_vote", "--output", str(out)],
        capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "Warning: the answer checker could not start" in done.stderr
    assert "pip install math-verify" in done.stderr
    assert len(json.loads(out.read_text())["rewards"]) == len(texts)  # the run still finished


def test_a_worker_that_dies_mid_check_is_counted_and_explained(registry):
    pool = CheckerPool(size=1)
    try:
        engine = AnswerEngine(registry, timeout_seconds=5.0, pool=pool)
        assert engine.equivalent(r"\sqrt{4}", "2", "math")  # a worker is up
        (pid,) = pool.pids()
        threading.Timer(0.3, os.kill, (pid, signal.SIGKILL)).start()
        verdict = engine.explain("9^{9^{9^{9}}}", "3", "math")  # busy for seconds: killed meanwhile
        assert not verdict.equivalent and verdict.failed
        assert engine.health()["failures"] >= 1
        assert engine.equivalent("y^2", "y*y", "math")  # a fresh worker answers
    finally:
        pool.shutdown()


def test_a_group_past_its_request_budget_degrades_to_normalised_classes_and_says_so(registry):
    engine = AnswerEngine(registry, budget=Budget(requests=4))
    # equations have no fingerprint: each distinct one needs its own walk through the checker
    answers = [f"x^{{{k}}}+{k}y=1" for k in range(2, 12)] + ["x^{2} + 2y=1", "x^{2}+2y=1"]
    classes = engine.cluster(answers, "math")
    d = classes.diagnostics
    assert "request budget" in d["degraded"]
    assert d["round_trips"] <= 4
    assert classes.num_classes == 10  # distinct answers stay apart; equal normalised texts still merge
    assert classes.class_ids[-1] == classes.class_ids[-2] == classes.class_ids[0]
    assert engine.health()["degraded_groups"] == 1


def test_a_group_past_its_time_budget_degrades_without_blaming_an_answer(registry):
    pool = CheckerPool(size=1)
    try:
        engine = AnswerEngine(registry, timeout_seconds=5.0, pool=pool, budget=Budget(seconds=1.0))
        engine.equivalent("1", "x", "math")  # start the worker outside the timed part
        # each of these costs the checker tens of milliseconds: the budget runs out part-way
        answers = ["+".join(f"\\frac{{{i + k}}}{{x+{k}}}" for k in range(40)) for i in range(80)]
        started = time.monotonic()
        classes = engine.cluster(answers + answers[:1], "math")
        assert time.monotonic() - started < 1.0 + 2.0
        d = classes.diagnostics
        assert "time budget" in d["degraded"]
        assert d["timeouts"] == 0  # cut by the budget: not a strike against any answer
        assert classes.num_classes == 80 and classes.class_ids[-1] == classes.class_ids[0]
    finally:
        pool.shutdown()


def test_one_hostile_answer_leaves_budget_for_the_honest_ones(registry):
    engine = AnswerEngine(registry, timeout_seconds=5.0, budget=Budget(seconds=1.0))
    engine.equivalent("1", "x", "math")
    classes = engine.cluster(["9^{9^{9^{9}}}", r"\sqrt{4}", "2", r"\frac{\pi}{2}", r"\pi/2"], "math")
    assert classes.class_ids[1] == classes.class_ids[2] and classes.class_ids[3] == classes.class_ids[4]
    assert classes.diagnostics["timeouts"] == 1 and "degraded" not in classes.diagnostics


def test_budgets_are_validated():
    with pytest.raises(ValueError):
        Budget(requests=-1)


def test_a_pool_that_gave_up_tries_again_after_a_while(registry, broken_math_verify, monkeypatch):
    from ttrl.core.answers import sandbox

    pool = CheckerPool(size=1)
    engine = AnswerEngine(registry, timeout_seconds=2.0, pool=pool)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(MAX_START_FAILURES):
            engine.explain("y^2", f"y*y+{_}", "math")
    assert pool.unavailable and pool.start_failures == MAX_START_FAILURES
    engine.explain("y^3", "y*y*y", "math")
    assert pool.start_failures == MAX_START_FAILURES  # within the wait: no attempt
    monkeypatch.delenv("PYTHONPATH")  # the cause goes away
    monkeypatch.setattr(sandbox, "RETRY_AFTER_SECONDS", 0.0)
    assert engine.equivalent("y^4", "y*y*y*y", "math")  # one retry, which works
    assert pool.unavailable is None
    pool.shutdown()


def test_a_hostile_answer_in_a_large_group_costs_one_limit(registry):
    """Groups of 8+ distinct answers are parsed in batches; an answer that may take seconds to
    evaluate is parsed alone, so its timeout is pinned on it and the honest answers are still compared."""
    pool = CheckerPool(size=1)
    try:
        engine = AnswerEngine(registry, timeout_seconds=5.0, pool=pool, budget=Budget(seconds=1.0))
        engine.equivalent("1", "x", "math")
        honest = [f"x^{{{k}}}+{k}" for k in range(2, 10)] + [r"\sqrt{4}", "2", r"\frac{\pi}{2}", r"\pi/2"]
        classes = engine.cluster(["9^{9^{9^{9}}}", *honest], "math")
        ids = classes.class_ids
        assert ids[-4] == ids[-3] and ids[-2] == ids[-1]  # sqrt(4) = 2, pi/2 = pi/2
        assert classes.diagnostics["timeouts"] == 1 and "degraded" not in classes.diagnostics
    finally:
        pool.shutdown()

"""Hostile rollouts: each one finishes within the time limit, leaves no file or process behind, and
gives a well-formed result, without hurting the honest answers in its group."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest

from ttrl.core.answers import AnswerEngine
from ttrl.core.answers.sandbox import CheckerPool
from ttrl.core.plugins import load_plugins

LIMIT = 1.0
#: Extraction in the caller plus one timed-out request (a killed worker is restarted before timing).
BOUND = LIMIT + 2.0

HOSTILE = {
    "os.system": r"The answer is \boxed{__import__('os').system('touch PWNED')}",
    "eval/open": r"\boxed{eval(\"open('PWNED', 'w').write('x')\")}",
    "exec in text": "exec(\"import os; os.system('touch PWNED')\") so the answer is $2$",
    "subprocess": r"\boxed{\text{__import__('subprocess').run(['touch', 'PWNED'])}}",
    "lambda": r"\boxed{(lambda: __import__('os').system('touch PWNED'))()}",
    "power tower": r"\boxed{9^{9^{9^{9}}}}",
    "exponent bomb": r"\boxed{10^{10^{10^{10}}}}",
    "factorial bomb": r"\boxed{(10^{10})!!}",
    "factorial tower": r"\boxed{((99!)!)!}",
    "deep braces 100k": r"\boxed{" + "{" * 100_000 + "1" + "}" * 100_000 + "}",
    "deep parens (parsed)": r"\boxed{" + "(" * 300 + "1" + ")" * 300 + "}",
    "deep fractions (parsed)": r"\boxed{" + r"\frac{1}{" * 60 + "2" + "}" * 60 + "}",
    "unclosed braces": r"\boxed{" * 50_000,
    "10 MB response": "Let me think. " * 750_000 + r"\boxed{2}",
    "surrogates": "\\boxed{\ud800 2 \udfff}",
    "NUL bytes": "\\boxed{2\x00\x00}",
    "right-to-left marks": "\\boxed{\u202e2\u202c\u200f}",
    "huge matrix power": r"\boxed{\begin{pmatrix}1&1\\1&0\end{pmatrix}^{10^{9}}}",
    "many boxes": r"\boxed{1}" * 200_000,
}


@pytest.fixture(scope="module")
def sandboxed(tmp_path_factory):
    """An engine whose workers run in an empty directory, to see whether anything gets written."""
    workdir = tmp_path_factory.mktemp("hostile-cwd")
    old = os.getcwd()
    os.chdir(workdir)
    try:
        pool = CheckerPool(size=1)
        engine = AnswerEngine(load_plugins(entry_points=False).registry, timeout_seconds=LIMIT, pool=pool)
        engine.equivalent("1", "x", "math")  # start the worker before timing anything
    finally:
        os.chdir(old)
    yield engine, pool, workdir
    pool.shutdown()


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_answer_is_contained(sandboxed, name, repo_root):
    engine, pool, workdir = sandboxed
    text = HOSTILE[name]
    pool.start()  # replaces a worker an earlier case got killed; its start-up is not this case's time
    started = time.monotonic()
    answer = engine.extract(text, "math")
    answers = [answer, "2", r"\frac{4}{2}", answer, r"\sqrt{4}"]
    classes = engine.cluster(answers, "math")
    elapsed = time.monotonic() - started

    assert elapsed < BOUND, f"{name} took {elapsed:.1f}s"
    assert answer is None or isinstance(answer, str)
    assert len(classes.class_ids) == len(answers)
    assert all(-1 <= k < classes.num_classes for k in classes.class_ids)
    assert classes.class_ids[0] == classes.class_ids[3]  # the same string is always its own class
    two = classes.class_ids[1]
    assert classes.class_ids[2] == two and classes.class_ids[4] == two  # honest answers still merge
    assert not any(workdir.iterdir()), f"{name} wrote {list(workdir.iterdir())}"
    assert not (repo_root / "PWNED").exists()
    assert pool.pids(), "the pool keeps (or has replaced) its worker"


ADVERSARIAL_TEXTS = {
    "answer phrases": "the answer is " * 700_000,
    "unterminated Minerva": "final answer is $" * 600_000,
    "choice statements": "the correct option is " * 500_000,
    "digits": "1" * 10_000_000,
    "thousands separators": "1," * 5_000_000,
    "parenthesised letters": "(A)" * 3_000_000,
    "bare boxes": "\\boxed " * 1_500_000,
    "backslashes": "\\" * 10_000_000,
    "dollars": "$" * 10_000_000,
    "inline math": "$1$ " * 2_500_000,
    "display math openers": "\\[" * 5_000_000,
    "bold": "**" * 5_000_000,
    "operators": "1+" * 5_000_000,
    "open tuples": "(1," * 3_000_000,
    "answer colons": "Answer: " * 1_250_000,
    "boxes joined by and": "\\boxed{1} and " * 700_000,
    "sentences": "So 2. " * 1_700_000,
    "a long gap between two boxes": "\\boxed{1}" + " " * 90_000 + "x\\boxed{2}",
    "a long gap between two spans": "$1$" + " " * 3_500 + "x$2$",
}


@pytest.mark.parametrize("name", list(ADVERSARIAL_TEXTS))
def test_extraction_of_10_mb_adversarial_text_is_quick(sandboxed, name):
    """Extraction runs in the caller with no time limit, so it reads only the end of a response."""
    engine, _, _ = sandboxed
    for task in ("math", "number", "multiple_choice"):
        started = time.monotonic()
        answer = engine.extract(ADVERSARIAL_TEXTS[name], task)
        assert time.monotonic() - started < 2.0, (name, task)
        assert answer is None or 0 < len(answer) <= 100_000


def test_a_10_mb_pre_extracted_answer_is_compared_as_a_string(sandboxed):
    engine, _, _ = sandboxed
    huge = r"\frac12" * 1_500_000
    started = time.monotonic()
    classes = engine.cluster([huge, "0.5", huge], "math")
    assert time.monotonic() - started < 1.0
    assert classes.class_ids == [0, 1, 0]
    assert classes.diagnostics["round_trips"] == 0


def test_answers_that_normalise_to_the_same_hostile_text_vote_together(sandboxed):
    engine, _, _ = sandboxed
    classes = engine.cluster(["9^{9^{9^{9}}}", "9^{9^{9^{9}}} ", "2"], "math")
    assert classes.class_ids == [0, 0, 1]


def test_no_worker_outlives_the_interpreter(tmp_path):
    """A program that uses the engine and exits without cleaning up leaves no checker process behind."""
    script = textwrap.dedent(
        r"""
        from ttrl.core.answers import AnswerEngine
        from ttrl.core.answers.sandbox import get_pool
        from ttrl.core.plugins import load_plugins
        engine = AnswerEngine(load_plugins(entry_points=False).registry, timeout_seconds=1.0)
        engine.cluster([r"\frac{\pi}{2}", r"\pi/2", "9^{9^{9^{9}}}"], "math")
        print(*get_pool().pids())
        """
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    pids = [int(p) for p in done.stdout.split()]
    assert pids
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_running(pid) for pid in pids):
        time.sleep(0.1)
    assert not any(_running(pid) for pid in pids)
    assert not any(tmp_path.iterdir())


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False

"""The free_form and code extractors: what they take, and hostile texts that degrade one rollout only."""

from __future__ import annotations

import time

import pytest

from ttrl.core.answers import AnswerEngine
from ttrl.core.data import Rollout, RolloutGroup
from ttrl.core.plugins import load_plugins
from ttrl.plugins.similarity_extractors import extract_code, extract_free_form, fenced_blocks


@pytest.fixture(scope="module")
def engine():
    return AnswerEngine(load_plugins(entry_points=False, warn=False).registry)


@pytest.mark.parametrize("text, expected", [
    ("Paris", "Paris"),
    ("The capital of France is Paris.", "The capital of France is Paris."),
    ("Let me think about it.\n\nFrance is in Europe.\n\nAnswer: Paris", "Paris"),
    ("Reasoning...\nFinal answer: **Jupiter**\n\nIt is big.", "Jupiter"),
    ("Sure! **Answer:** Leonardo da Vinci.\n\nI hope this helps!", "Leonardo da Vinci."),
    ("First I recall facts.\n\nThe answer is the cheetah.", "the cheetah."),
    ("Step 1: recall.\n\nStep 2: the heart pumps blood.\n\nLet me know if you have other questions!",
     "Step 2: the heart pumps blood."),
    ("<think>maybe Lyon\n\nAnswer: Lyon</think>\nParis.", "Paris."),
    ("Certainly! Portuguese is spoken in Brazil.", "Portuguese is spoken in Brazil."),
    ("## Summary: Mars", "Mars"),
    ("I hope this helps!", "I hope this helps!"),  # a sign-off that is all there is stays
])
def test_free_form_takes_the_final_answer_part(text, expected):
    assert extract_free_form(text) == expected


@pytest.mark.parametrize("text", ["", "   \n\n  ", "**\n\n##"])
def test_free_form_without_content_is_no_answer(text):
    assert extract_free_form(text) is None


def test_code_takes_the_last_python_block():
    text = "```python\ndef add(a, b):\n    return a + b\n```\nOr:\n```js\nconst add = (a, b) => a + b;\n```\n"
    assert extract_code(text) == "def add(a, b):\n    return a + b"
    text = "```\nprint(1)\n```\n```python\nx = 1\n```\n```\ny = 2\n```"
    assert extract_code(text) == "x = 1"  # Python-tagged before untagged
    assert extract_code("```\nfirst\n```\n```\nsecond\n```") == "second"
    assert extract_code("```bash\nls\n```") == "ls"  # any language as a last resort
    assert extract_code("~~~py\ndef f():\n    pass\n~~~") == "def f():\n    pass"


def test_code_block_left_open_runs_to_the_end():
    assert extract_code("Here:\n```python\ndef f(n):\n    return n *") == "def f(n):\n    return n *"
    # ... but a closed block comes first: the open one was cut short by the token limit
    assert extract_code("```python\ndef f(n):\n    return n\n```\nOr a loop:\n```python\ndef is") == "def f(n):\n    return n"


def test_code_prefers_the_block_that_defines_something():
    text = ("```python\ndef is_even(n):\n    return n % 2 == 0\n```\nUse it:\n"
            "```python\nprint(is_even(5))  # False\n```")
    assert extract_code(text) == "def is_even(n):\n    return n % 2 == 0"


def test_code_without_fences_starts_at_the_first_code_line():
    assert extract_code("Here is it:\ndef f(x):\n    return x\n") == "def f(x):\n    return x"
    assert extract_code("No code here at all.") is None
    assert extract_code("```python\n\n```") is None


def test_fence_rules():
    # a closing fence is at least as long as the opening one and has no language tag
    blocks = fenced_blocks("````python\n```\ninner\n```\n````\n")
    assert blocks == [("python", "```\ninner\n```\n", True)]


HOSTILE = {
    "10 MB of words": "blah " * 2_000_000 + "\n\nAnswer: Paris",
    "100k blank lines": "\n" * 100_000 + "Paris",
    "100k spaces between newlines": ("\n" + " " * 100_000 + "\n") * 3 + "Paris",
    "100k markers": "Answer: " * 100_000,
    "100k fences": "```\n" * 100_001,
    "100k unclosed python fences": "```python\n" * 100_000,
    "a 1 MB line of backticks": "`" * 1_000_000,
    "deeply nested code": "```python\nx = " + "(" * 50_000 + "1" + ")" * 50_000 + "\n```",
    "code that does not parse": "```python\ndef f(:\n    return ]\n```",
    "surrogates and NULs": "Answer: \ud800 Paris \x00\x00",
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_texts_degrade_one_rollout_only(engine, name):
    text = HOSTILE[name]
    for task, honest in (("free_form", "Answer: Paris"), ("code", "```python\ndef f(x):\n    return x\n```")):
        group = RolloutGroup(id="g", prompt="?", task=task,
                             rollouts=[Rollout(text=honest), Rollout(text=text), Rollout(text=honest)])
        started = time.perf_counter()
        classes = engine.classify(group)
        assert time.perf_counter() - started < 3.0, (name, task)
        assert classes.class_ids[0] == classes.class_ids[2] == 0  # the honest pair still agree
        assert classes.answers[0] == classes.answers[2] is not None

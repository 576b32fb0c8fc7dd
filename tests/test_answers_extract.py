"""Answer extraction, table by table: what each built-in extractor takes from a response, and what it
must not take. The extractors are reached through the registry the real plugins fill, as the engine
reaches them."""

from __future__ import annotations

import pytest

from ttrl.core.answers import AnswerEngine
from ttrl.core.plugins import load_plugins


@pytest.fixture(scope="module")
def engine():
    return AnswerEngine(load_plugins(entry_points=False).registry)


MATH = [
    # the last box wins, braces matched
    (r"First $\boxed{1}$, then on reflection $\boxed{\frac{\sqrt{3}}{2}}$.", r"\frac{\sqrt{3}}{2}"),
    (r"So $x \in \boxed{\left[ -1, \frac{1}{2} \right)}$", r"\left[ -1, \frac{1}{2} \right)"),
    (r"The set is \boxed{\{1, 2\}}", r"\{1, 2\}"),
    (r"\fbox{42}", "42"),
    (r"Thus \boxed 7$.", "7"),
    # an unclosed last box does not hide an earlier closed one
    (r"\boxed{12} ... and \boxed{13", "12"),
    # Minerva's format
    ("Final Answer: The final answer is $\\frac{3}{56}$. I hope it is correct.", r"\frac{3}{56}"),
    # "the answer is"
    ("Adding them up, the answer is $2220$.", "2220"),
    ("So the answer is 6 - 5i.", "6 - 5i"),
    ("So the answer is 12 apples.", "12"),  # a unit after a number is not part of the answer
    ("So the answer is 5 x.", "5 x"),  # ... but one letter may be a variable
    # the last number, as the final fallback
    ("There are 3 apples and 4 pears, 7 fruits", "7"),
    ("The total is -12.5", "-12.5"),
]

MATH_NO_ANSWER = [
    "I could not solve this problem.",
    r"The answer is \boxed{}",
    r"\boxed{   }",
    "",
]


@pytest.mark.parametrize(("text", "expected"), MATH)
def test_math_extractor(engine, text, expected):
    assert engine.extract(text, "math") == expected


@pytest.mark.parametrize("text", MATH_NO_ANSWER)
def test_math_extractor_says_no_answer_rather_than_empty(engine, text):
    assert engine.extract(text, "math") is None


@pytest.mark.parametrize(
    ("text", "boxed", "no_number"),
    [
        (r"It is $\boxed{5}$", "5", "5"),
        ("Final Answer: The final answer is $9$. I hope it is correct.", None, "9"),
        ("Hence the answer is 4.", None, "4"),
        ("I tried 3 approaches and gave up", None, None),
    ],
)
def test_math_fallbacks_are_chosen_by_variant(engine, text, boxed, no_number):
    assert engine.extract(text, "math_boxed") == boxed
    assert engine.extract(text, "boxed") == boxed  # alias
    assert engine.extract(text, "math_no_number") == no_number


MULTIPLE_CHOICE = [
    ("(B)", "B"),
    ("Answer: b", "B"),
    ("**C**", "C"),
    ("the correct option is D", "D"),
    ("After eliminating the others, the answer is (E).", "E"),
    (r"$\boxed{A}$", "A"),
    (r"\boxed{\text{(c)}}", "C"),
    ("Options (A) and (B) are wrong. Answer: C", "C"),
    ("I pick\nD\n", "D"),
    ("The correct choice is **B**.", "B"),
]

MULTIPLE_CHOICE_NOT = [
    "A rectangle has four sides, so the area is 12.",  # an article is not a choice
    "the answer is a bit tricky to find",  # a lowercase word is not a choice
    "My answer: e.g. think about it",
    "The answer is A good deal of energy.",
    "Answer: F",  # only A-E
    "I am not sure.",
    "",
]


@pytest.mark.parametrize(("text", "expected"), MULTIPLE_CHOICE)
def test_multiple_choice_extractor(engine, text, expected):
    assert engine.extract(text, "multiple_choice") == expected
    assert engine.extract(text, "gpqa") == expected


@pytest.mark.parametrize("text", MULTIPLE_CHOICE_NOT)
def test_multiple_choice_extractor_ignores_letters_that_are_not_choices(engine, text):
    assert engine.extract(text, "multiple_choice") is None


NUMBER = [
    ("Janet sells 16 - 3 - 4 = 9 eggs at $2 each.\n#### 18", "18"),
    ("The total cost is $1,234.50.", "1234.50"),
    ("So 3/4 of them, i.e. 75%", "75"),
    ("The answer is 12 cm.", "12"),
    (r"She needs \boxed{\$1,600} in total", "1600"),
    ("The temperature dropped to -5 degrees", "-5"),
    ("between 3-5 hours, say 5", "5"),
    ("#### 1,000,000", "1000000"),
]


@pytest.mark.parametrize(("text", "expected"), NUMBER)
def test_number_extractor(engine, text, expected):
    assert engine.extract(text, "number") == expected


@pytest.mark.parametrize("text", ["No idea.", "", "####", r"\boxed{}"])
def test_number_extractor_without_a_number(engine, text):
    assert engine.extract(text, "number") is None


def test_a_failing_third_party_extractor_costs_one_rollout(engine):
    from ttrl.core.registry import Registry

    registry = Registry()
    registry.extractor_callback("flaky")("flaky", lambda text: 1 / 0 if "boom" in text else text, compare="exact")
    flaky = AnswerEngine(registry)
    assert flaky.extract("boom", "flaky") is None
    assert flaky.extract("B", "flaky") == "B"
    assert flaky.extract("   ", "flaky") is None  # blank is no answer


def test_unknown_compare_mode_is_a_user_error():
    from ttrl.core.errors import UserError
    from ttrl.core.registry import Registry

    registry = Registry()
    registry.extractor_callback("odd")("odd", lambda text: text, compare="fuzzy")
    with pytest.raises(UserError, match="compare='fuzzy'"):
        AnswerEngine(registry).extract("x", "odd")

"""The answer engine's own corpus, case class by case class (documented in docs/answers.md, "Corpus").

Every case is written for ttrl: real SmolLM2-135M rollouts from the built-in set, the answer formats
that instruct models are prompted into (LLaMA/Mistral/Qwen/Minerva styles, as described in the
graders' documentation), and the conventions the major graders document (math-verify, the MATH
``is_equiv`` normaliser, Qwen2.5-Math's and NeMo-Skills' ``math_equal``, verl's and TTRL's reward
functions). Where one bullet names a class of inputs, the class is generated, not only its example.
Each case goes through the engine as training uses it: model text through the extractor, the
reference as given.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ttrl.core.answers import AnswerEngine, Budget
from ttrl.core.answers.normalize import Conventions
from ttrl.core.plugins import load_plugins


@pytest.fixture(scope="module")
def registry():
    return load_plugins(entry_points=False).registry


@pytest.fixture(scope="module")
def math(registry):
    return AnswerEngine(registry, timeout_seconds=5.0).for_task("math")


def graded(math, text: str, reference: str) -> bool:
    """What a reward is: the rollout's extracted answer equivalent to the reference."""
    answer = math.extract(text)
    return answer is not None and math.equivalent(answer, reference)


# -- extraction without a box: the last expression of the concluding statement ----------------------

UNBOXED = [
    # (response, expected answer); instruct models without a box (LLaMA/Mistral/SmolLM styles)
    (r"So the probability is $\dfrac{5}{12}$.", r"\dfrac{5}{12}"),
    (r"Therefore the ratio is $\frac13$", r"\frac13"),
    (r"The solution set is $[0,1)$.", "[0,1)"),
    (r"The intersection point is $(3,2)$.", "(3,2)"),
    (r"The product is $\begin{pmatrix} 1 & 2 \\ 3 & 4 \end{pmatrix}$.", r"\begin{pmatrix} 1 & 2 \\ 3 & 4 \end{pmatrix}"),
    (r"They meet at $12:00$.", "12:00"),
    (r"so every solution satisfies $x \geq 5$", r"x \geq 5"),
    (r"Hence \(x = \frac{\pi}{4}\).", r"x = \frac{\pi}{4}"),
    ("Therefore, the answer is:\n\\[\n\\frac{3}{4}\n\\]", r"\frac{3}{4}"),
    ("So the value is $$2\\sqrt{3}$$", r"2\sqrt{3}"),
    ("Adding up: 9 + 6 = 15", "15"),
    ("$6 + 9 = 15$", "15"),
    ("The total comes to **42**.", "42"),
    ("**Final Answer:** 42", "42"),
    ("## Final Answer\nThe final answer is $\\frac{7}{2}$", r"\frac{7}{2}"),
    ("Final Answer: The final answer is $\\frac{3}{56}$. I hope it is correct.", r"\frac{3}{56}"),  # Minerva
    ("The answer is: 7", "7"),
    ("So the answer is 12 apples.", "12"),
    ("So the answer is approximately 19.05.", "19.05"),
    ("The answer is 15 (in base 10).", "15"),
    ("The answer is given by: 6 + 4 = 10", "10"),
    ('The answer is "3".', "3"),
    ("The answer is '3'.", "3"),
    # digit-free answers
    (r"The answer is $\text{E}$.", r"\text{E}"),
    ("The answer is odd.", "odd"),
    ("Final answer: Even", "Even"),
    (r"The answer is $f(y) = y$.", "f(y) = y"),
    ("The answer is Monday.", "Monday"),
    ("The answer is no solution.", None),  # "no" opens an opinion, not an answer word
    ("The final answer is $\\infty$", r"\infty"),
    # a response that is only an expression is that expression
    (r"\frac{1}{2}", r"\frac{1}{2}"),
    ("x^2+1", "x^2+1"),
    (r"\pi", r"\pi"),
    ("6 - 5i", "6 - 5i"),
    ("(1, 2)", "(1, 2)"),
    (r"\begin{pmatrix}1\\2\end{pmatrix}", r"\begin{pmatrix}1\\2\end{pmatrix}"),
    ("16 - 7 = 9", "9"),
    # several spans joined by "or"/"and" in the final statement are one list answer
    ("So $x=2$ or $x=3$.", "x=2, x=3"),
    ("The roots are $-1$ and $4$.", "-1, 4"),
    # a factorial is not a sentence's end; a currency sign inside a span is not its end
    ("The number of orderings is $5!$", "5!"),
    (r"It costs $\$5.00$.", r"\$5.00"),
]


@pytest.mark.parametrize(("text", "expected"), UNBOXED)
def test_unboxed_answers(math, text, expected):
    assert math.extract(text) == expected


def _context_class():
    """The last digit string inside a fraction, interval, tuple, matrix, time or inequality is never
    the answer: the whole expression is (generated for many values)."""
    for a, b in [(1, 2), (5, 12), (13, 7), (100, 3)]:
        yield rf"So the probability is $\dfrac{{{a}}}{{{b}}}$.", rf"\dfrac{{{a}}}{{{b}}}"
        yield rf"so it is $\frac{a}{b}$." if a < 10 and b < 10 else rf"so it is $\frac{{{a}}}{{{b}}}$.", None
        yield f"The interval is $[{a},{b})$.", f"[{a},{b})"
        yield f"The interval is $({a}, {b}]$.", f"({a}, {b}]"
        yield f"The point is $({a},{b})$.", f"({a},{b})"
        yield f"The point is ({a}, {b}).", f"({a}, {b})"
        yield f"The time is ${a % 12}:{b:02d}$.", f"{a % 12}:{b:02d}"
        yield f"The time is {a % 12}:{b:02d}.", f"{a % 12}:{b:02d}"
        yield f"so $x \\geq {a}$", f"x \\geq {a}"
        yield f"so $y < {b}$", f"y < {b}"
        yield f"The ratio is {a}/{b}.", f"{a}/{b}"
        yield rf"The vector is $\begin{{pmatrix}} {a} \\ {b} \end{{pmatrix}}$", rf"\begin{{pmatrix}} {a} \\ {b} \end{{pmatrix}}"
        yield rf"The root is $\frac{{{a}+\sqrt{{{b}}}}}{{2}}$.", rf"\frac{{{a}+\sqrt{{{b}}}}}{{2}}"


@pytest.mark.parametrize(("text", "expected"), list(_context_class()))
def test_the_whole_expression_not_its_last_digits(math, text, expected):
    answer = math.extract(text)
    if expected is None:  # the \frac shorthand: any spelling whose value is the fraction
        assert answer is not None and "frac" in answer
    else:
        assert answer == expected


@pytest.mark.parametrize("word", ["AZYUK2A", "B12X", "x2y", "H2O", "COVID19x"])
def test_digits_inside_a_word_are_no_answer(math, word):
    assert math.extract(f"The code is {word}") is None
    assert not graded(math, f"The code is {word}", "2")


@pytest.mark.parametrize(
    ("text", "reference"),
    [(r"$\frac{1+\sqrt{5}}{2}$", "2"), (r"So the probability is $\dfrac{5}{12}$.", "12"), (r"$\frac13$", "13"),
     ("$[0,1)$", "1"), ("$(3,2)$", "2"), ("$12:00$", "00"), (r"$x \geq 5$", "5")],
)
def test_no_false_match_on_a_trailing_digit(math, text, reference):
    assert not graded(math, text, reference)


# -- boxes -------------------------------------------------------------------------------------------

BOXES = [
    (r"The solutions are $\boxed{1}, \boxed{2}$.", "1, 2"),
    (r"So $x = \boxed{1}$ or $x = \boxed{-3}$.", None),  # words other than and/or between: the last box
    (r"\boxed{(2, 2)} and \boxed{(6, 2)}", "(2, 2), (6, 2)"),
    (r"\boxed{3} or \boxed{5}", "3, 5"),
    (r"First $\boxed{1}$, then on reflection $\boxed{2}$.", "2"),
    (r"We found \boxed{255} intermediate. The final answer is $10,455$", "10,455"),
    (r"The final answer is $10,455$. To check: \boxed{10455}", "10455"),
    (r"\Boxed{5}", "5"),
    (r"Therefore, the final answer is: $\boxed{42}$. I hope it is correct.", "42"),  # LLaMA-3 style
    (r"The answer is $\boxed{5}$. This answer is correct.", "5"),
]


@pytest.mark.parametrize(("text", "expected"), BOXES)
def test_boxes(math, text, expected):
    answer = math.extract(text)
    if expected is None:
        assert answer == "-3"
    else:
        assert answer == expected


def test_bare_and_listed_answers_grade_as_training_would(math):
    assert graded(math, "The final answer is $x = -1$ or $x = 3$", "-1, 3")
    assert graded(math, r"\frac12", "0.5")
    assert graded(math, "So $x=2$ or $x=3$.", r"\{2, 3\}")
    assert graded(math, "The number of orderings is $5!$", "120")
    assert graded(math, r"It costs $\$5.00$.", "5")


def test_several_boxes_form_one_set_answer(math):
    assert graded(math, r"$\boxed{1}, \boxed{2}$", r"\{1, 2\}")
    assert graded(math, r"$\boxed{2}$ and $\boxed{1}$", "1, 2")
    assert not graded(math, r"$\boxed{1}, \boxed{2}$", "2")


# -- prose that is not an answer, cut-off responses ---------------------------------------------------

NO_ANSWER = [
    "Your answer is correct and well explained.",
    "This answer is incorrect.",
    "That answer is wrong, try again.",
    "the answer is a bit tricky to find",
    "The answer is a prime number.",
    "The answer is the sum of the two numbers.",
    "I could not solve this problem.",
    "Not a number.",
    # cut off at the token limit (real SmolLM2-135M rollouts of the built-in set end like this)
    "To find 9 + 6, we need to add 9 to 6. \nWe can do this by simply adding 9 to 6. \nSo, 9 +",
    "Ben has 6 + 9 = 15 stickers.\nLet's find out the final number by adding the total number of stickers Ben got to 15. 15 + ",
    "Ben has 6 + 9 = 15 stickers.\nBen now has 15 - 1 = 14 stickers.\nMore specifically, 14 x 2 =",
    "To solve this equation with only the final number, we need to first find the remainder when 16 - 7 is divided by 11.\n\nWe can calculate the remainder of ",
    "we'll first perform the calculation of 8 x 3. 8 x 3 equals 24, which is a multiple of 3. So, 8 x",
    "We get $\\frac{3}{",
    "The answer is $\\frac{1}{2",
    "So the point is (3, 2",
]


@pytest.mark.parametrize("text", NO_ANSWER)
def test_no_answer_rather_than_a_wrong_digit(math, text):
    assert math.extract(text) is None


REAL_SMOLLM2 = [
    # (built-in set rollout text, expected answer): real SmolLM2-135M-Instruct outputs, verbatim
    ("6 + 9 = 15", "15"),
    ("Ben gave away 15 books, so in total, he had 15 - 10 = 5 books left.", "5"),
    ("Jo has 9 + 5 = 15 shells.\nSince Jo has 15 shells, the answer is 15.", "15"),
    ("14 - 2 = 12.", "12"),
    ("The answer is: 7", "7"),
    ("2 times 9 equals 18.", "18"),
    ('"2 \\times 9 = 18"', "18"),
    ("The answer is \\boxed{22}.", "22"),
    ("19 - 10 is 19.\n\nThe final answer is: 19", "19"),
    ("14\n\nThis is approximately 19.05 \nSo the final answer is 19.05", "19.05"),
    ("To solve this, we need to add 9 and 6, which indeed equals 55.", "55"),
    ("6 + 6 = 12 in the context of mathematics, but in the context of the original question, no, it is simply 12.", "12"),
]


@pytest.mark.parametrize(("text", "expected"), REAL_SMOLLM2)
def test_real_smollm2_rollouts(math, text, expected):
    assert math.extract(text) == expected


def test_the_built_in_set_never_answers_with_digits_from_a_word_or_a_cut(math):
    """Over all 1,600 real rollouts: an answer is never a digit string glued to letters, and a rollout
    that ends on an operator (and has neither a box nor an answer statement) has no answer."""
    path = Path(__file__).resolve().parents[1] / "ttrl" / "data" / "builtin_rollouts.jsonl"
    texts = [r["text"] for line in path.read_text().splitlines() for r in json.loads(line)["rollouts"]]
    assert len(texts) == 1600
    answered = 0
    for text in texts:
        answer = math.extract(text)
        if text.rstrip().endswith(("+", "-", "=", "*", "(")) and "boxed" not in text and "answer" not in text:
            assert answer is None, text
        if answer is not None:
            answered += 1
            assert not any(c.isdigit() for c in answer) or not any(
                a.isalpha() and b.isdigit() or a.isdigit() and b.isalpha() for a, b in zip(answer, answer[1:])
                if a not in "xi" and b not in "xi"
            ), (text, answer)
    assert answered > 800


# -- conventions: percent, decimal comma, thousands, lists, rounding ---------------------------------


@pytest.mark.parametrize("value", ["25", "50", "12.5", "100", "0.5", "7"])
def test_percent_is_its_value_by_default(math, value):
    # the MATH normaliser, Qwen2.5-Math's and TTRL's graders drop the percent sign
    assert math.equivalent(f"{value}\\%", value)
    assert math.equivalent(f"{value}%", value)
    assert graded(math, f"The answer is ${value}\\%$.", value)


def test_percent_as_a_fraction_is_an_option(registry):
    fraction = AnswerEngine(registry, conventions=Conventions(percent="fraction")).for_task("math")
    assert fraction.equivalent("25\\%", "0.25")
    assert not fraction.equivalent("25\\%", "25")


@pytest.mark.parametrize(
    ("written", "value"),
    [("1,22", "1.22"), ("0,111", "0.111"), ("3,14", "3.14"), ("0,5", "0.5"), ("12,75", "12.75"), ("1{,}5", "1.5")],
)
def test_decimal_comma(math, written, value):
    assert math.equivalent(written, value)


@pytest.mark.parametrize(
    ("written", "value"),
    [("10,455", "10455"), ("1,000", "1000"), ("1,234,567", "1234567"), ("-2,500", "-2500"), (r"\$1,600", "1600"),
     (r"1,\!000", "1000"), (r"12,\!345", "12345"), ("1{,}000", "1000")],  # MATH writes thousands as 1,\!000
)
def test_thousands_separators(math, written, value):
    assert math.equivalent(written, value)
    assert graded(math, f"The final answer is ${written}$", value)


@pytest.mark.parametrize(("a", "b"), [("32", "349"), ("1", "234"), ("12", "500"), ("7", "100")])
def test_a_list_is_not_one_number(math, a, b):
    listed = f"{a}, {b}"
    assert not math.equivalent(listed, a + b)
    assert math.equivalent(listed, f"{b}, {a}")  # a list of answers is a set
    assert not graded(math, f"The answers are {listed}", a + b)


@pytest.mark.parametrize(
    ("decimal", "exact", "same"),
    [("0.3333", r"\frac13", True), ("0.0833333333333333", r"\frac{1}{12}", True), ("0.1667", r"\frac16", True),
     ("0.1666", r"\frac16", True), ("0.333", r"\frac13", False), ("0.33", r"\frac13", False), ("0.3334", r"\frac13", False),
     ("1.4142", r"\sqrt{2}", True), ("1.41", r"\sqrt{2}", False), ("2.7183", "e", True), ("3.0001", "3", False)],
)
def test_rounded_decimals_against_exact_values(math, decimal, exact, same):
    assert math.equivalent(decimal, exact) is same
    assert math.equivalent(exact, decimal) is same


def test_exact_decimals_are_an_option(registry):
    exact = AnswerEngine(registry, conventions=Conventions(decimals="exact")).for_task("math")
    assert not exact.equivalent("0.3333", r"\frac13")
    assert not exact.equivalent("1.4142", r"\sqrt{2}")
    assert exact.equivalent("0.25", r"\frac14")


def test_two_decimals_compare_by_value(math):
    assert math.equivalent("2.50", "2.5")
    assert not math.equivalent("0.3333", "0.33333")


# -- equivalence: equations, variables, units, sets and tuples, matrices ------------------------------

EQUATIONS = [
    ("2x+4y-3=0", r"y=-\frac12x+\frac34", True),
    ("x+y=2", "2x+2y=4", True),
    ("y=2x+1", "2x+1", True),  # an assignment equals its value (math-verify: gold assignment)
    ("x=5", "5", True),
    (r"x=\frac{\pi}{2}", r"\frac{\pi}{2}", True),
    ("a+3z=0", "0", False),  # an equation is not the value of one side
    ("x+y=1", "1", False),
    ("y=2x+1", "x=2x+1", False),
    ("f=ma", "m=ma", False),
    ("x^2=1", "x=1", False),
    ("3x-1y+13=0", "x+y=2", False),
    ("y=2x+1", "y=2x+2", False),
    ("x=1, x=2", "1, 2", True),
]


@pytest.mark.parametrize(("a", "b", "same"), EQUATIONS)
def test_equations_are_equal_when_they_define_the_same_relation(math, a, b, same):
    assert math.equivalent(a, b) is same
    assert math.equivalent(b, a) is same


UNITS = [
    (r"5\text{ cm}", "5", True),
    (r"5\text{ cm}", r"5\text{ km}", False),
    (r"10\text{ cm}", r"10\text{ cm}", True),
    (r"12\text{ inches}", r"12\text{ inch}", True),
    (r"3\text{ m}", r"4\text{ m}", False),
    ("5 km", "5", True),  # a unit written without \text (verl's DAPO normaliser drops unit words)
    ("5 km", "5 cm", False),
    (r"10\text{ cm}^2", "10", True),
    (r"10\text{ cm}^2", r"10\text{ cm}", False),
    ("12 square units", "12", True),
    ("1,000 dollars", "1000", True),
    ("5 x", "5", False),  # one letter is a variable, not a unit
]


@pytest.mark.parametrize(("a", "b", "same"), UNITS)
def test_units(math, a, b, same):
    assert math.equivalent(a, b) is same


CONTAINERS = [
    ("(3,1)", r"\{1,3\}", False),  # an ordered pair is not a set
    ("(3,1)", "(1,3)", False),
    (r"\{1,3\}", r"\{3,1\}", True),
    ("1,3", r"\{3,1\}", True),
    ("[1,2)", "(1,2)", False),
    (r"(-\infty, 0]", r"\left(-\infty,0\right]", True),
    (r"\begin{pmatrix}1&2\\3&4\end{pmatrix}+\begin{pmatrix}1&0\\0&1\end{pmatrix}", r"\begin{pmatrix}2&2\\3&5\end{pmatrix}", True),
    (r"\begin{pmatrix}1&2\\3&4\end{pmatrix}\begin{pmatrix}0&1\\1&0\end{pmatrix}", r"\begin{pmatrix}2&1\\4&3\end{pmatrix}", True),
    (r"\begin{pmatrix}1&2\\3&4\end{pmatrix}\begin{pmatrix}0&1\\1&0\end{pmatrix}", r"\begin{pmatrix}1&2\\3&4\end{pmatrix}", False),
    (r"2\begin{pmatrix}1\\2\end{pmatrix}", r"\begin{pmatrix}2\\4\end{pmatrix}", True),
]


@pytest.mark.parametrize(("a", "b", "same"), CONTAINERS)
def test_tuples_sets_intervals_matrices(math, a, b, same):
    verdict = math.explain(a, b)
    assert verdict.equivalent is same, verdict
    assert not verdict.failed, verdict  # decided, not a silent failure


WORDS = [
    (r"\text{E}", "E", True),
    (r"\text{(E)}", "E", True),
    ("odd", "Odd", True),
    (r"\text{Even}", "even", True),
    ("odd", "even", False),
    ("f(y) = y", "f(y)=y", True),
]


@pytest.mark.parametrize(("a", "b", "same"), WORDS)
def test_answers_without_digits(math, a, b, same):
    assert math.equivalent(a, b) is same


# -- the label ---------------------------------------------------------------------------------------


def test_the_label_is_the_cleanest_member(math):
    texts = ["So the answer is $\\dfrac{1}{2}$.", "The answer is 0.5", "\\boxed{\\frac12}", "\\boxed{ \\frac{1}{2} }", "\\boxed{3}"]
    classes = math.classify_texts(texts)
    assert classes.class_ids == [0, 0, 0, 0, 1]
    assert classes.representatives == [r"\frac{1}{2}", "3"]


def test_a_label_keeps_its_unit(math):
    classes = math.cluster([r"5\text{ cm}", "5 cm", r"5\text{ km}"])
    assert classes.class_ids == [0, 0, 1]
    assert classes.representatives == [r"5\text{ cm}", r"5\text{ km}"]
    assert not math.equivalent(classes.representatives[0], r"5\text{ km}")  # a label means what its members mean


# -- explaining a verdict ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "reason"),
    [("0.5", r"\frac12", "same number"), ("2", "3", "numbers differ"), (r"5\text{ cm}", r"5\text{ km}", "units differ"),
     ("(1,2)", r"\{1,2\}", "a sequence is not a set"), ("a+3z=0", "0", "an equation is not a value"),
     ("0.3333", r"\frac13", "rounded decimal"), ("2x+4y-3=0", r"y=-\frac12x+\frac34", "same relation")],
)
def test_explain_says_what_decided(math, a, b, reason):
    verdict = math.explain(a, b)
    assert verdict.reason == reason
    assert not verdict.failed


def test_conventions_are_chosen_in_the_run_config(registry, tmp_path):
    from ttrl.core.config import load_run_config
    from ttrl.core.errors import UserError

    path = tmp_path / "run.yaml"
    path.write_text("estimator:\n  name: majority_vote\nanswers:\n  percent: fraction\n  decimals: exact\n"
                    "  group_seconds: 2.5\n  group_requests: 100\n")
    engine = AnswerEngine.from_settings(registry, load_run_config(path).answers)
    assert engine.conventions == Conventions(percent="fraction", decimals="exact")
    assert engine.budget == Budget(requests=100, seconds=2.5)
    assert engine.equivalent("25\\%", "0.25", "math") and not engine.equivalent("0.3333", r"\frac13", "math")
    path.write_text("estimator:\n  name: majority_vote\nanswers:\n  percent: half\n")
    with pytest.raises(UserError, match="percent"):
        load_run_config(path)


# -- boxed responses: the label TTRL's own code gives --------------------------------------------------

QWEN_STYLE_GROUPS = [
    # (responses, the label of TTRL's vote: the most common last-box content)
    ([r"... so the answer is $\boxed{5}$.", r"Thus $\boxed{5}$", r"We get $\boxed{6}$.", r"Therefore, the final answer is: $\boxed{5}$. I hope it is correct."], "5"),
    ([r"\boxed{\frac{1}{2}}", r"\boxed{\frac{1}{2}}.", r"\boxed{2}", r"The answer is \boxed{\frac{1}{2}}"], r"\frac{1}{2}"),
    ([r"First $\boxed{3}$, then on reflection $\boxed{4}$.", r"$\boxed{4}$", r"$\boxed{3}$"], "4"),
    ([r"The probability is $\boxed{\dfrac{5}{12}}$.\n\nThis answer is correct.", r"$\boxed{\frac{5}{12}}$", r"$\boxed{\frac{7}{12}}$"], r"\frac{5}{12}"),
    ([r"$\boxed{(3, \frac{\pi}{2})}$", r"$\boxed{\left( 3, \frac{\pi}{2} \right)}$", r"$\boxed{(3, \pi)}$"], r"(3, \frac{\pi}{2})"),
]


@pytest.mark.parametrize(("responses", "ttrl_label"), QWEN_STYLE_GROUPS)
def test_boxed_responses_vote_for_the_label_ttrl_gives(math, responses, ttrl_label):
    from ttrl.core.data import Rollout, RolloutGroup
    from ttrl.plugins.majority_vote import MajorityVoteOptions, estimate_majority_vote

    group = RolloutGroup(id="g", prompt="p", rollouts=[Rollout(t) for t in responses])
    group.classes = math.classify_texts(responses)
    estimate = estimate_majority_vote(group, MajorityVoteOptions())
    assert math.equivalent(estimate.label, ttrl_label)

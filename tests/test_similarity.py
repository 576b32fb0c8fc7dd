"""Similarities, the medoid and single-link classes: hand-worked values, and rouge-score agreement on real rollouts."""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path

import pytest

from ttrl.core import similarity as sim

DATA = Path(__file__).resolve().parents[1] / "ttrl" / "data" / "similarity_rollouts.jsonl"


def test_rouge_l_f1_by_hand():
    # tokens: the cat sat on the mat / the cat lay on the mat; LCS "the cat on the mat" = 5 -> 2*5/(6+6)
    assert sim.rouge_l("The cat sat on the mat.", "the cat LAY on the mat") == pytest.approx(10 / 12)
    # LCS("a b c d", "b d") = 2: P = 2/2, R = 2/4, F1 = 2PR/(P+R) = 2/3
    assert sim.rouge_l("a b c d", "b d") == pytest.approx(2 / 3)
    # order matters: "b a" against "a b" has LCS 1
    assert sim.rouge_l("a b", "b a") == pytest.approx(0.5)
    assert sim.rouge_l("Paris", "The capital of France is Paris.") == pytest.approx(2 / 7)
    assert sim.rouge_l("", "anything") == 0.0 and sim.rouge_l("!!!", "!!!") == 0.0  # no content, no agreement
    assert sim.rouge_l("Zürich straße", "zürich STRASSE") == pytest.approx(0.5)  # non-ASCII words are words


def test_jaccard_by_hand():
    assert sim.jaccard("the cat sat", "the cat ran") == pytest.approx(2 / 4)
    assert sim.jaccard("a a b", "b b a") == 1.0  # sets, not multisets
    assert sim.jaccard("x", "y") == 0.0 and sim.jaccard("", "") == 0.0


def test_lcs_reference_and_rapidfuzz_agree():
    cases = [("abcbdab", "bdcaba"), ("", "abc"), ("aaaa", "aa"), ("xyz", "zyx")]
    for a, b in cases:
        expected = {("abcbdab", "bdcaba"): 4, ("", "abc"): 0, ("aaaa", "aa"): 2, ("xyz", "zyx"): 1}[(a, b)]
        assert sim.lcs_length(list(a), list(b)) == expected
        assert sim.lcs_f1(list(a), list(b)) == pytest.approx(0.0 if not a or not b else 2 * expected / (len(a) + len(b)))


def test_rouge_l_equals_rouge_score_on_real_rollouts():
    rouge_scorer = pytest.importorskip("rouge_score.rouge_scorer")
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    pairs = []
    for line in DATA.read_text(encoding="utf-8").splitlines():
        texts = [r["text"].encode("ascii", "ignore").decode() for r in json.loads(line)["rollouts"]]
        pairs.extend(itertools.combinations(texts, 2))
    assert len(pairs) > 300
    for a, b in pairs:
        assert sim.rouge_l(a, b) == pytest.approx(scorer.score(a, b)["rougeL"].fmeasure, abs=1e-12)


ADD = "def add(a, b):\n    return a + b\n"


def test_ast_similarity_by_hand():
    # labels: Module, FunctionDef:v0, arguments, arg:v1, arg:v2, Return, BinOp, Name:v1, Add, Name:v2
    assert sim.code_structure(ADD) == ["Module", "FunctionDef:v0", "arguments", "arg:v1", "arg:v2", "Return",
                                       "BinOp", "Name:v1", "Add", "Name:v2"]
    assert sim.ast_similarity(ADD, "def plus(x, y):\n    return x + y") == 1.0  # identifiers normalised
    assert sim.ast_similarity(ADD, 'def add(a, b):\n    """Sum."""\n    return a + b  # note') == 1.0  # docstring, comment
    assert sim.ast_similarity(ADD, "def add(a, b):\n    return a - b\n") == pytest.approx(18 / 20)  # one label of ten
    # builtins, attributes and small constants keep their names: len is not sum, % 2 is not % 3
    assert sim.ast_similarity("def f(s):\n    return len(s)", "def f(s):\n    return sum(s)") < 1.0
    assert sim.ast_similarity("def f(n):\n    return n % 2", "def f(n):\n    return n % 3") < 1.0
    assert sim.ast_similarity("x.split()", "x.strip()") < 1.0


def test_unparsable_code_falls_back_to_tokens():
    broken = "def add(a, b)\n    return a + b"  # missing colon
    assert sim.code_structure(broken) is None
    matrix = sim.similarity_matrix([broken, broken, ADD], "ast")
    assert matrix.diagnostics["unparsed"] == 2
    assert matrix.values[0, 1] == 1.0
    # one side unparsable: both compared by code tokens (ROUGE-L over identifiers and punctuation)
    tokens_a, tokens_b = sim.code_tokens(broken), sim.code_tokens(ADD)
    assert matrix.values[0, 2] == pytest.approx(sim.lcs_f1(tokens_a, tokens_b))


@pytest.mark.parametrize("source", [
    "(" * 100_000 + ")" * 100_000,          # past the parser's nesting limit
    "not " * 5_000 + "x",                   # deep unary chain
    "a+" * 9_000 + "a",                     # a 9000-deep BinOp tree: past MAX_AST_DEPTH
    "".join(" " * i + "if x:\n" for i in range(120)) + " " * 120 + "pass\n",  # too many indentation levels
    "x = 1\n" * 10_000,                     # more nodes than MAX_AST_NODES
    "def f(:\n" * 1000,                     # does not parse
])
def test_hostile_code_is_degraded_to_tokens_quickly(source):
    started = time.perf_counter()
    assert sim.code_structure(source) is None
    matrix = sim.similarity_matrix([source, ADD, ADD], "ast")
    assert time.perf_counter() - started < 2.0
    assert matrix.values[1, 2] == 1.0  # the honest answers are untouched
    assert matrix.diagnostics["unparsed"] == 1


def test_huge_answers_are_truncated_and_counted():
    huge = "word " * 1_000_000
    started = time.perf_counter()
    matrix = sim.similarity_matrix([huge, huge, "word"], "rouge_l")
    assert time.perf_counter() - started < 5.0
    assert matrix.diagnostics["truncated"] == 2
    assert matrix.values[0, 1] == 1.0


def test_deadline_gives_zero_and_is_counted():
    answers = [f"answer number {i}" for i in range(30)]
    matrix = sim.similarity_matrix(answers, "rouge_l", deadline_seconds=0.0)
    assert matrix.diagnostics["pairs_past_deadline"] == 30 * 29 // 2
    assert matrix.values[0, 1] == 0.0 and matrix.values[0, 0] == 1.0


def test_medoid_by_hand():
    # s(0,1) = 2*2/5 = 0.8, everything else 0: rows 0 and 1 tie at mean 0.4 -> the first
    matrix = sim.similarity_matrix(["a b", "a b c", "x y"], "rouge_l")
    assert matrix.values[0, 1] == pytest.approx(0.8)
    assert sim.medoid(matrix) == 0
    # "a b c" is 0.8 from both "a b" and "a b c d" (2*3/7 = 0.857 from the latter): it is the centre
    matrix = sim.similarity_matrix(["a b", "a b c d", "a b c", None], "rouge_l")
    assert sim.medoid(matrix) == 2
    assert sim.medoid(sim.similarity_matrix([None, "only"], "rouge_l")) == 1
    assert sim.medoid(sim.similarity_matrix([None, None], "rouge_l")) is None


def test_single_link_joins_chains_at_the_threshold():
    # A-B: LCS "a b c" = 3 -> 0.75; B-C: "a b e" -> 0.75; A-C: "a b" -> 0.5; D shares nothing
    answers = ["a b c d", "a b c e", "a b g e", "x y z w", None]
    matrix = sim.similarity_matrix(answers, "rouge_l")
    assert matrix.values[0, 2] == pytest.approx(0.5)
    assert sim.single_link_classes(matrix, 0.6) == [0, 0, 0, 1, -1]  # A and C joined through B
    assert sim.single_link_classes(matrix, 0.8) == [0, 1, 2, 3, -1]
    assert sim.single_link_classes(matrix, 0.5) == [0, 0, 0, 1, -1]  # >= θ, not > θ


def test_similarity_classes_are_labelled_by_their_medoid():
    classes = sim.similarity_classes(["a b", "a b c d", "a b c", "x y"], "rouge_l", 0.6)
    assert classes.class_ids == [0, 0, 0, 1]
    assert classes.representatives == ["a b c", "x y"]
    assert classes.sizes() == [3, 1]


def test_containment_grades_short_references():
    assert sim.containment("The capital of France is Paris.", "Paris", "rouge_l") == 1.0
    assert sim.containment("Lyon is the capital of France.", "Paris", "rouge_l") == 0.0
    assert sim.containment("William Shakespeare", "Shakespeare wrote it", "rouge_l") == pytest.approx(1 / 2)
    assert sim.containment("a b c", "c b a x", "jaccard") == 1.0
    example = ADD + "\nprint(add(1, 2))\n"
    assert sim.containment(example, ADD, "ast") == 1.0  # the reference's structure is all there
    assert sim.containment(ADD, "def add(a, b):\n    return a - b", "ast") == pytest.approx(0.9)

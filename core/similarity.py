"""Similarity of free-form answers and code: ROUGE-L F1, token-set Jaccard and a structural AST similarity.

Pure functions over strings, used by the ``consensus_similarity`` estimator, by the answer engine to
make answer classes for the ``free_form`` and ``code`` tasks, and by the bench to measure rollout
correlation. Every value is in [0, 1] and symmetric. See ``docs/answers.md``.

- **Tokens** (:func:`text_tokens`): lower-cased runs of Unicode letters and digits. This is the
  tokenisation of Google's ``rouge-score`` (``RougeScorer(["rougeL"])``, no stemmer) on ASCII text;
  ``rouge-score`` keeps only ``[a-z0-9]`` and so drops every non-ASCII word, which this keeps.
- **ROUGE-L F1** (:func:`rouge_l`): with L the length of the longest common subsequence of the two
  token lists, P = L/|b|, R = L/|a|, F1 = 2PR/(P+R) = 2L/(|a|+|b|). The LCS is computed by
  ``rapidfuzz.distance.LCSseq`` (bit-parallel, on token sequences), which gives the same L as the
  dynamic programme of :func:`lcs_length`; ``benchmarks/similarity.py`` checks both against
  ``rouge-score`` and measures the speed.
- **Jaccard** (:func:`jaccard`): |A ∩ B| / |A ∪ B| over the two token sets.
- **AST** (:func:`ast_similarity`): Python source is parsed with :func:`ast.parse` (never compiled or
  run); the tree becomes its pre-order sequence of node labels, with docstrings dropped and
  identifiers renamed by order of first appearance (``def add(a, b)`` and ``def add(x, y)`` are the
  same; builtins such as ``len`` keep their names, as do attribute names and short constants); the
  similarity is the ROUGE-L F1 of the two label sequences. Source that does not parse, or is past
  the size limits, is compared by ROUGE-L over its code tokens instead (both sides then).

An empty token list has no content: its similarity to anything is 0. Costs are bounded by
:data:`MAX_TOKENS` tokens per answer (the rest is ignored, and :func:`prepare` says so), source of at
most :data:`MAX_SOURCE_CHARS` characters, trees of at most :data:`MAX_AST_NODES` nodes and
:data:`MAX_AST_DEPTH` levels, and, per group, a wall-clock deadline checked between pairs (no
signals, so it works from any thread): pairs past it get 0 and are counted.
"""

from __future__ import annotations

import ast
import builtins
import re
import time
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from rapidfuzz.distance import LCSseq

from .data import AnswerClasses

#: Similarity measures by name (the ``similarity`` option and the extractors' ``compare`` modes).
SIMILARITIES = ("rouge_l", "jaccard", "ast")
MAX_TOKENS = 4096
MAX_SOURCE_CHARS = 20_000
MAX_AST_NODES = 5_000
MAX_AST_DEPTH = 100
#: Constants up to this many characters keep their value in the AST labels (``n % 2 == 0`` is not ``n % 2 == 1``).
MAX_CONSTANT_CHARS = 24

_WORD = re.compile(r"[^\W_]+")
_CODE_TOKEN = re.compile(r"\w+|[^\w\s]")
_BUILTIN_NAMES = frozenset(dir(builtins))


def text_tokens(text: str) -> list[str]:
    """Lower-cased runs of letters and digits (rouge-score's tokens, but not only ASCII)."""
    return _WORD.findall(text.lower())


def code_tokens(source: str) -> list[str]:
    """Identifiers, numbers and single punctuation characters of source code."""
    return _CODE_TOKEN.findall(source)


def lcs_length(a: Sequence, b: Sequence) -> int:
    """Length of the longest common subsequence: the plain O(|a|·|b|) dynamic programme (reference)."""
    if len(a) < len(b):
        a, b = b, a
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b):
            current.append(previous[j] + 1 if x == y else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def lcs_f1(a: Sequence, b: Sequence) -> float:
    """ROUGE-L F1 of two token sequences: 2·LCS/(|a|+|b|), 0 when either is empty."""
    if not a or not b:
        return 0.0
    return 2.0 * LCSseq.similarity(a, b) / (len(a) + len(b))


def set_jaccard(a: frozenset | set, b: frozenset | set) -> float:
    if not a or not b:
        return 0.0
    return len(a & b) / len(a | b)


def rouge_l(a: str, b: str) -> float:
    """ROUGE-L F1 of two texts (see the module docstring)."""
    return pair_similarity(prepare(a, "rouge_l"), prepare(b, "rouge_l"), "rouge_l")


def jaccard(a: str, b: str) -> float:
    """Jaccard similarity of the two texts' token sets."""
    return pair_similarity(prepare(a, "jaccard"), prepare(b, "jaccard"), "jaccard")


def ast_similarity(a: str, b: str) -> float:
    """Structural similarity of two Python sources (ROUGE-L F1 of normalised AST label sequences)."""
    return pair_similarity(prepare(a, "ast"), prepare(b, "ast"), "ast")


class _TooBig(Exception):
    pass


def _labels(tree: ast.AST) -> list[str]:
    """Pre-order node labels with identifiers renamed by first appearance; raises :class:`_TooBig`."""
    names: dict[str, str] = {}

    def rename(name: str) -> str:
        if name in _BUILTIN_NAMES:
            return name
        return names.setdefault(name, f"v{len(names)}")

    labels: list[str] = []
    stack: list[tuple[ast.AST, int]] = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_AST_DEPTH or len(labels) >= MAX_AST_NODES:
            raise _TooBig()
        kind = type(node).__name__
        if isinstance(node, ast.Name):
            labels.append(f"Name:{rename(node.id)}")
        elif isinstance(node, ast.arg):
            labels.append(f"arg:{rename(node.arg)}")
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            labels.append(f"{kind}:{rename(node.name)}")
        elif isinstance(node, ast.Attribute):
            labels.append(f"Attribute:{node.attr}")
        elif isinstance(node, ast.Constant):
            value = repr(node.value)
            labels.append(f"Constant:{value}" if len(value) <= MAX_CONSTANT_CHARS else f"Constant:{type(node.value).__name__}")
        elif isinstance(node, ast.expr_context):
            continue  # Load/Store/Del say nothing a Name's position does not
        else:
            labels.append(kind)
        body = getattr(node, "body", None)
        children = [
            child for child in ast.iter_child_nodes(node)
            if not (isinstance(body, list) and body and child is body[0] and _is_docstring(child))
        ]
        stack.extend((child, depth + 1) for child in reversed(children))
    return labels


def _is_docstring(node: ast.AST) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


def code_structure(source: str) -> list[str] | None:
    """The normalised AST label sequence of ``source``, or ``None`` when it does not parse or is too big."""
    if len(source) > MAX_SOURCE_CHARS:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SyntaxWarning for "\d" and the like: not our business
            tree = ast.parse(source)
        return _labels(tree)
    except (SyntaxError, ValueError, RecursionError, MemoryError, _TooBig):
        return None


@dataclass(frozen=True, slots=True)
class Prepared:
    """One answer made ready for comparison: its tokens (or AST labels), computed once per group."""

    tokens: tuple
    token_set: frozenset
    structure: tuple | None = None
    truncated: bool = False


def prepare(answer: str, similarity: str, vocabulary: dict[str, int] | None = None) -> Prepared:
    """Tokens (and for ``ast`` the label sequence) of one answer, within the size limits. With a
    ``vocabulary`` (one per group) tokens and labels become integer ids, which the LCS compares about
    five times faster than strings; equal ids are equal strings, so every similarity is unchanged."""
    if similarity == "ast":
        structure = code_structure(answer)
        tokens = code_tokens(answer[: MAX_SOURCE_CHARS * 2])
    else:
        structure = None
        tokens = text_tokens(answer[: MAX_TOKENS * 64])
    truncated = len(tokens) > MAX_TOKENS
    tokens = tokens[:MAX_TOKENS]
    if vocabulary is not None:
        tokens = [vocabulary.setdefault(t, len(vocabulary)) for t in tokens]
        if structure is not None:
            structure = [vocabulary.setdefault(label, len(vocabulary)) for label in structure]
    return Prepared(tuple(tokens), frozenset(tokens), None if structure is None else tuple(structure), truncated)


def pair_similarity(a: Prepared, b: Prepared, similarity: str) -> float:
    """Similarity of two prepared answers under the named measure."""
    if similarity == "jaccard":
        return set_jaccard(a.token_set, b.token_set)
    if similarity == "ast" and a.structure is not None and b.structure is not None:
        return lcs_f1(a.structure, b.structure)
    return lcs_f1(a.tokens, b.tokens)


def check_similarity(name: str) -> str:
    if name not in SIMILARITIES:
        raise ValueError(f"unknown similarity {name!r}; known: {', '.join(SIMILARITIES)}")
    return name


@dataclass
class SimilarityMatrix:
    """Pairwise similarities of a group's answers; rows of answers that are ``None`` are all 0."""

    values: np.ndarray
    answered: list[bool]
    diagnostics: dict = field(default_factory=dict)


def similarity_matrix(
    answers: Sequence[str | None], similarity: str, *, deadline_seconds: float | None = 10.0
) -> SimilarityMatrix:
    """The N × N similarity matrix (diagonal 1 for answered rollouts), with what was degraded counted:
    ``unparsed`` answers compared by tokens (``ast``), ``truncated`` answers, and ``pairs_past_deadline``
    (given 0 once the group's wall-clock deadline passed)."""
    check_similarity(similarity)
    started = time.monotonic()
    n = len(answers)
    vocabulary: dict[str, int] = {}
    prepared = [None if a is None else prepare(a, similarity, vocabulary) for a in answers]
    values = np.zeros((n, n))
    late = 0
    for i in range(n):
        if prepared[i] is None:
            continue
        values[i, i] = 1.0
        for j in range(i + 1, n):
            if prepared[j] is None:
                continue
            if deadline_seconds is not None and time.monotonic() - started > deadline_seconds:
                late += 1
                continue
            values[i, j] = values[j, i] = pair_similarity(prepared[i], prepared[j], similarity)
    present = [p for p in prepared if p is not None]
    diagnostics = {
        "similarity": similarity,
        "truncated": sum(p.truncated for p in present),
        "seconds": time.monotonic() - started,
    }
    if similarity == "ast":
        diagnostics["unparsed"] = sum(p.structure is None for p in present)
    if late:
        diagnostics["pairs_past_deadline"] = late
    return SimilarityMatrix(values, [p is not None for p in prepared], diagnostics)


def medoid(matrix: SimilarityMatrix) -> int | None:
    """The answered rollout with the highest mean similarity to the other answered ones (ties to the
    first); ``None`` when nobody answered. A lone answer is its own medoid."""
    indices = [i for i, ok in enumerate(matrix.answered) if ok]
    if not indices:
        return None
    if len(indices) == 1:
        return indices[0]
    block = matrix.values[np.ix_(indices, indices)]
    means = (block.sum(axis=1) - 1.0) / (len(indices) - 1)
    return indices[int(np.argmax(means))]  # argmax returns the first maximum


def single_link_classes(matrix: SimilarityMatrix, threshold: float) -> list[int]:
    """Class ids by single-link clustering: two answers share a class when a chain of answers with
    pairwise similarity ≥ ``threshold`` joins them. Ids follow first appearance; -1 = no answer."""
    n = len(matrix.answered)
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(n):
        if not matrix.answered[i]:
            continue
        for j in range(i + 1, n):
            if matrix.answered[j] and matrix.values[i, j] >= threshold:
                root_i, root_j = find(i), find(j)
                if root_i != root_j:
                    parent[max(root_i, root_j)] = min(root_i, root_j)
    ids: dict[int, int] = {}
    out = []
    for i in range(n):
        if not matrix.answered[i]:
            out.append(-1)
            continue
        out.append(ids.setdefault(find(i), len(ids)))
    return out


# -- answer classes and grading for the similarity tasks (used by the answer engine) ---------------

#: Default θ of the answer classes (single link over F1 ≥ θ) per measure.
DEFAULT_CLASS_THRESHOLDS = {"rouge_l": 0.5, "jaccard": 0.5, "ast": 0.9}
#: Default θ of grading against a reference (containment ≥ θ) per measure.
DEFAULT_GRADE_THRESHOLDS = {"rouge_l": 0.5, "jaccard": 0.5, "ast": 0.95}


@dataclass(frozen=True)
class SimilarityThresholds:
    """θ per measure for answer classes (``classes``) and for grading against a reference (``grade``);
    measures not named take the defaults."""

    classes: dict = field(default_factory=dict)
    grade: dict = field(default_factory=dict)

    def class_threshold(self, measure: str) -> float:
        return float(self.classes.get(measure, DEFAULT_CLASS_THRESHOLDS[measure]))

    def grade_threshold(self, measure: str) -> float:
        return float(self.grade.get(measure, DEFAULT_GRADE_THRESHOLDS[measure]))

    def describe(self) -> dict:
        """What the bench states in its results: every measure's two thresholds and their rules."""
        return {
            measure: {
                "class_threshold": self.class_threshold(measure),
                "grade_threshold": self.grade_threshold(measure),
            }
            for measure in SIMILARITIES
        } | {
            "classes": "single-link clusters of answers whose similarity (F1) >= class_threshold",
            "grading": "correct when containment(answer, reference) >= grade_threshold: the common part "
            "(LCS, or shared tokens for jaccard) over the length of the shorter side",
        }


def containment(a: str, b: str, similarity: str) -> float:
    """How much of the shorter answer is found in the other: LCS/min(|a|,|b|) over tokens (``rouge_l``)
    or AST labels (``ast``, tokens when either does not parse); |A ∩ B|/min(|A|,|B|) for ``jaccard``.
    Symmetric; 0 when either is empty. A short reference ("Paris") is fully contained in a sentence
    that states it ("The capital of France is Paris"), which F1 would score 0.29."""
    x, y = prepare(a, similarity), prepare(b, similarity)
    if similarity == "jaccard":
        small = min(len(x.token_set), len(y.token_set))
        return len(x.token_set & y.token_set) / small if small else 0.0
    if similarity == "ast" and x.structure is not None and y.structure is not None:
        p, q = x.structure, y.structure
    else:
        p, q = x.tokens, y.tokens
    if not p or not q:
        return 0.0
    return LCSseq.similarity(p, q) / min(len(p), len(q))


def similarity_classes(answers: Sequence[str | None], similarity: str, threshold: float,
                       *, deadline_seconds: float | None = 10.0) -> AnswerClasses:
    """Answer classes by single-link clustering at ``threshold``; each class's label is its medoid."""
    matrix = similarity_matrix(answers, similarity, deadline_seconds=deadline_seconds)
    class_ids = single_link_classes(matrix, threshold)
    labels = []
    for k in range(max(class_ids, default=-1) + 1):
        members = [i for i, c in enumerate(class_ids) if c == k]
        sub = SimilarityMatrix(matrix.values[np.ix_(members, members)], [True] * len(members))
        labels.append(answers[members[medoid(sub)]])
    diagnostics = {
        "method": f"{similarity}: single-link clusters at similarity >= {threshold}, labelled by their medoid",
        "answers": len(answers),
        "no_answer": class_ids.count(-1),
        **matrix.diagnostics,
    }
    if "pairs_past_deadline" in diagnostics:
        diagnostics["degraded"] = True
    return AnswerClasses(list(answers), class_ids, labels, diagnostics)


#: Rollout correlation reads at most this many rollouts of a group (so at most 2016 pairs).
MAX_CORRELATION_ROLLOUTS = 64


def rollout_correlation(texts: Sequence[str]) -> float | None:
    """Mean pairwise token overlap of a group's responses: the mean over pairs i < j of the Jaccard
    similarity of their word sets (whole response texts, not extracted answers). DARE measures the
    correlation of a group's rollouts by pairwise token overlap; its exact overlap formula was not at
    hand when this was written, so Jaccard over word sets is ttrl's choice. ``None`` with fewer than two
    rollouts; at most the first :data:`MAX_CORRELATION_ROLLOUTS` rollouts and :data:`MAX_TOKENS` tokens each.
    Identical texts are tokenised once and their pairs counted together (simulated groups repeat a few texts)."""
    texts = texts[:MAX_CORRELATION_ROLLOUTS]
    n = len(texts)
    if n < 2:
        return None
    counts = Counter(texts)
    sets = [frozenset(text_tokens(t[: MAX_TOKENS * 64])[:MAX_TOKENS]) for t in counts]
    weights = list(counts.values())
    total = 0.0
    for i, (a, wa) in enumerate(zip(sets, weights)):
        if a and wa > 1:
            total += wa * (wa - 1) / 2  # pairs of identical texts: overlap 1
        for b, wb in zip(sets[i + 1 :], weights[i + 1 :]):
            union = len(a | b)
            if union:
                total += wa * wb * len(a & b) / union
    return total / (n * (n - 1) / 2)

"""String normalisation and the fast-path keys of the answer engine.

Everything here is plain string work in linear time: it runs in the caller's process on untrusted
text, so it never evaluates anything, never builds big integers from exponents, and caps the number
of digits it converts. Each normalisation step is one that cannot merge two answers with different
meanings (spacing, ``\\left``/``\\right``, ``\\dfrac``, ``^\\circ``, ``\\text{}`` around a whole
answer, a trailing unit after a number, a leading ``x =``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

#: Answers longer than this (after normalisation) are compared as strings only, never parsed.
MAX_PARSE_CHARS = 1000
#: Answers longer than this are not even normalised: they are compared as exact strings (the
#: extractors never return one; a rollout file's pre-extracted answer might).
MAX_NORMALIZE_CHARS = 100_000
#: Digits a plain number may have to get an exact rational key (Python refuses > 4300 anyway).
MAX_DIGITS = 200

_SPACES = re.compile(r"\s+")
# Control characters, zero-width and bidirectional marks, lone surrogates: invisible, meaningless in
# an answer, and a way to make two equal answers look different (or a parser choke).
_INVISIBLE = re.compile("[\x00-\x1f\x7f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff\ud800-\udfff]")
_SIZING = re.compile(r"\\(?:left|right|big|Big|bigg|Bigg)(?![A-Za-z])|\\displaystyle")
# Thin spaces and the like; `\\\\ ` (a matrix row break then a space) is not `\\ `.
_SPACING = re.compile(r"(?<!\\)\\[!,;: ]|~")
_COMMAND_SPACE = re.compile(r"(\\[A-Za-z]+)\s+(?=[A-Za-z])")
_FRAC_SHORT = re.compile(r"\\frac(\d)(\d)")
_FRAC_SHORT_NUMERATOR = re.compile(r"\\frac(\d)(?=\{)")
_FRAC_SHORT_DENOMINATOR = re.compile(r"\\frac(\{[^{}]*\})(\d)")
_DEGREES = re.compile(r"\^\{?\\circ\}?")
_WRAPPED = re.compile(r"^\\(?:text|textbf|mathrm|mbox|textrm|mathbf)\{([^{}]*)\}$")
_UNIT_AFTER_NUMBER = re.compile(r"^([-+]?[\d.,]+(?:\\%)?)\\(?:text|mbox|mathrm)\{[a-zA-Z .]*\}$")
_LEADING_VARIABLE = re.compile(r"^[a-zA-Z]=(?!.*=)(.+)$")


def normalize_answer(answer: str) -> str:
    """A canonical spelling of an answer string: equal spellings mean equal answers.

    >>> normalize_answer(r"\\left( 3, \\dfrac{\\pi}{2} \\right).")
    '(3,\\\\frac{\\\\pi}{2})'
    """
    return normalize_with_flag(answer)[0]


def normalize_with_flag(answer: str) -> tuple[str, bool]:
    """:func:`normalize_answer`, plus whether the answer was one ``\\text{...}`` group.

    A wrapped answer is a word (``\\text{Bob}``), not a product of variables ``B*o*b``.
    """
    text = _INVISIBLE.sub(" ", answer).strip()
    # `$...$` and `\(...\)` are delimiters, not part of the answer.
    if text.startswith("\\(") and text.endswith("\\)"):
        text = text[2:-2]
    text = text.rstrip(".").strip().strip("$").strip()
    text = _SIZING.sub("", text)
    text = _SPACING.sub(" ", text)
    text = text.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    # `\pi r` is not `\pir`: the space that ends a command name before a letter stays (as NUL,
    # which _INVISIBLE removed above, while the other spaces go).
    text = _COMMAND_SPACE.sub("\\1\x00", text)
    text = _SPACES.sub("", text).replace("\x00", " ")
    text = _FRAC_SHORT.sub(r"\\frac{\1}{\2}", text)
    text = _FRAC_SHORT_NUMERATOR.sub(r"\\frac{\1}", text)
    text = _FRAC_SHORT_DENOMINATOR.sub(r"\\frac\1{\2}", text)
    text = text.replace("\\$", "")  # currency
    text = _DEGREES.sub("", text)
    text = text.rstrip(".")
    wrapped = _WRAPPED.match(text)
    if wrapped:
        text = wrapped.group(1).strip()
    unit = _UNIT_AFTER_NUMBER.match(text)
    if unit:
        text = unit.group(1)
    variable = _LEADING_VARIABLE.match(text)
    if variable:
        text = variable.group(1)
    return text, wrapped is not None


# -- exact rationals ----------------------------------------------------------------------------

_DECIMAL = re.compile(r"^([-+]?)(\d{1,3}(?:,\d{3})+|\d+)?(?:\.(\d+))?$")
_LATEX_FRACTION = re.compile(r"^([-+]?)\\frac\{([-+]?)(\d+)\}\{([-+]?)(\d+)\}$")
_SLASH_FRACTION = re.compile(r"^([-+]?)\(?([-+]?\d+)\)?/\(?([-+]?\d+)\)?$")


def _decimal(text: str) -> Fraction | None:
    match = _DECIMAL.match(text)
    if not match or (match.group(2) is None and match.group(3) is None):
        return None
    sign, whole, fractional = match.groups()
    whole = (whole or "0").replace(",", "")
    fractional = fractional or ""
    if len(whole) + len(fractional) > MAX_DIGITS:
        return None
    value = Fraction(int(whole + fractional), 10 ** len(fractional))
    return -value if sign == "-" else value


def _fraction(text: str) -> Fraction | None:
    match = _LATEX_FRACTION.match(text)
    if match:
        sign, num_sign, num, den_sign, den = match.groups()
        negative = (sign == "-") ^ (num_sign == "-") ^ (den_sign == "-")
    else:
        match = _SLASH_FRACTION.match(text)
        if not match:
            return None
        sign, num, den = match.groups()
        negative = (sign == "-") ^ num.startswith("-") ^ den.startswith("-")
        num, den = num.lstrip("+-"), den.lstrip("+-")
    if len(num) + len(den) > MAX_DIGITS or int(den) == 0:
        return None
    value = Fraction(int(num), int(den))
    return -value if negative else value


def plain_number(text: str) -> Fraction | None:
    """The exact value of a normalised plain number, fraction, decimal or percentage, else ``None``.

    ``0.5``, ``\\frac{1}{2}``, ``1/2``, ``50\\%`` and ``\\frac{2}{4}`` all give ``Fraction(1, 2)``.
    Thousands separators are accepted only in their strict form (``12,345``). Scientific notation
    and powers are refused: their value could be astronomically large.
    """
    percent = False
    if text.endswith("\\%"):
        text, percent = text[:-2], True
    elif text.endswith("%"):
        text, percent = text[:-1], True
    value = _decimal(text)
    if value is None:
        value = _fraction(text)
    if value is None:
        return None
    return value / 100 if percent else value


# -- fast-path keys -----------------------------------------------------------------------------

_OPENERS = {"(": ")", "[": "]", "\\{": "\\}"}
_WORD = re.compile(r"^[A-Za-z][A-Za-z']*$")


@dataclass(frozen=True, slots=True)
class Key:
    """What the fast paths know about one normalised answer.

    ``kind`` is ``"number"`` (value: a Fraction), ``"set"`` (a frozenset of Fractions: ``\\{1,2\\}`` and
    the bare list ``1,2``, which math-verify also reads as a set), ``"sequence"`` (brackets plus a
    tuple of Fractions: points, tuples, intervals), ``"word"`` (a case-folded word answer such as
    ``\\text{Evelyn}``) or ``"text"`` (anything else: value is the normalised string). Two answers with
    equal keys are equivalent. Two keys of the same decided kind that differ are not equivalent;
    everything else needs the semantic checker.
    """

    kind: str
    value: object

    @property
    def decided(self) -> bool:
        return self.kind != "text"


def _split_top_level(text: str) -> list[str] | None:
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        if char in "({[":
            depth += 1
        elif char in ")}]":
            depth -= 1
            if depth < 0:
                return None
        elif char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def _numbers(parts: list[str]) -> tuple[Fraction, ...] | None:
    values = []
    for part in parts:
        value = plain_number(part)
        if value is None:
            return None
        values.append(value)
    return tuple(values)


def _composite_key(text: str) -> Key | None:
    for opener, closer in _OPENERS.items():
        if text.startswith(opener) and text.endswith(closer) and len(text) > len(opener) + len(closer):
            inner = text[len(opener) : -len(closer)]
            parts = _split_top_level(inner)
            values = _numbers(parts) if parts and len(parts) >= 2 else None
            if values is None:
                return None
            if opener == "\\{":
                return Key("set", frozenset(values))
            return Key("sequence", (opener, values))
    for opener, closer in (("(", "]"), ("[", ")")):
        # Half-open intervals: the brackets are part of the meaning.
        if text.startswith(opener) and text.endswith(closer):
            parts = _split_top_level(text[1:-1])
            values = _numbers(parts) if parts and len(parts) == 2 else None
            return Key("sequence", (opener + closer, values)) if values is not None else None
    if "," in text:
        parts = _split_top_level(text)
        values = _numbers(parts) if parts and len(parts) >= 2 else None
        if values is not None:
            return Key("set", frozenset(values))
    return None


def answer_key(normalized: str, *, wrapped: bool = False) -> Key:
    """The fast-path key of a normalised answer (see :class:`Key`).

    ``wrapped`` says the original answer was a ``\\text{...}``, which makes a short word a word
    rather than a product of variables.
    """
    if len(normalized) > MAX_PARSE_CHARS:
        return Key("text", normalized)
    value = plain_number(normalized)
    if value is not None:
        return Key("number", value)
    composite = _composite_key(normalized)
    if composite is not None:
        return composite
    if _WORD.match(normalized) and (wrapped or len(normalized) >= 4):
        # `Evelyn` is a name, not the product E*v*e*l*y*n that a CAS would see.
        return Key("word", normalized.replace(" ", "").casefold())
    return Key("text", normalized)


def keys_decide(a: Key, b: Key) -> bool | None:
    """Equivalence decided by keys alone: ``True``/``False``, or ``None`` when math is needed."""
    if a == b:
        return True
    if a.decided and b.decided:
        # Different values of one kind differ; a scalar is never a point, a set or a word; and an
        # ordered tuple is not a set (math-verify says `(2,1)` is `\{1,2\}`; order matters there).
        return False
    return None

"""String normalisation and the fast-path keys of the answer engine.

Everything here is plain string work in linear time: it runs in the caller's process on untrusted
text, so it never evaluates anything, never builds big integers from exponents, and caps the number
of digits it converts. Each normalisation step is one that cannot merge two answers with different
meanings (spacing, ``\\left``/``\\right``, ``\\dfrac``, ``^\\circ``, ``\\text{}`` around a whole
answer, thousands separators, a decimal comma, a leading ``x =`` before a constant). A unit after a
number is split off and kept beside the value (``5 cm`` is not ``5 km``), and a list written with
``", "`` is never read as one number with thousands separators (``32, 349``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
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
# `32, 349` is a list of two numbers; `32,349` one number. The space decides, so it is kept as a mark.
_LIST_COMMA = re.compile(r"(?<=\d),\s+(?=[-+]?\d)")
_LIST_MARK = "\x01"
_FRAC_SHORT = re.compile(r"\\frac(\d)(\d)")
_FRAC_SHORT_NUMERATOR = re.compile(r"\\frac(\d)(?=\{)")
_FRAC_SHORT_DENOMINATOR = re.compile(r"\\frac(\{[^{}]*\})(\d)")
_DEGREES = re.compile(r"\^\{?\\circ\}?")
_WRAPPED = re.compile(r"^\\(?:text|textbf|mathrm|mbox|textrm|mathbf)\{([^{}]*)\}$")
_UNIT_AFTER_NUMBER = re.compile(r"^([-+]?[\d.,]+(?:\\%)?)\\(?:text|mbox|mathrm)\{([a-zA-Z .]*)\}(\^\{?\d\}?)?$")
# `5 km`, `12 square units` written without \text: words of two letters or more after a number
# (one letter is a variable: `5 x`).
_PLAIN_UNIT = re.compile(r"^([-+]?[\d.,]+)\s+([A-Za-z]{2,}(?:\s+[A-Za-z]{2,}){0,2})(\^\{?\d\}?)?$")
_LEADING_VARIABLE = re.compile(r"^([a-zA-Z])(?:=|\\in(?![A-Za-z]))(?!.*=)(.+)$")
# What a constant may contain besides digits and operators: `x = \frac{\pi}{2}` is the constant
# `\frac{\pi}{2}`, while in `y = 2x + 1` the right side has a variable and the equation stays whole.
_CONSTANT_COMMANDS = re.compile(
    r"\\(?:frac|sqrt|pi|infty|cdot|times|div|pm|mp|circ|sin|cos|tan|cot|sec|csc|log|ln|exp|text\{[^{}]*\})(?![A-Za-z])"
)
_NUMBER_WITH_SEPARATORS = re.compile(r"^([-+]?)([1-9]\d{0,2}(?:,\d{3})+)(\.\d+)?((?:\\%|%)?)$")
_BRACED_COMMA = re.compile(r"(?<=\d)\{,\}(?=\d)")
_DECIMAL_COMMA = re.compile(r"^([-+]?)(\d+),(\d+)((?:\\%|%)?)$")


@dataclass(frozen=True, slots=True)
class Normalized:
    """A normalised answer: its canonical text, whether it was one ``\\text{...}`` group (a word, not a
    product of variables), and the unit written after a number (``"cm"`` in ``5\\text{ cm}``)."""

    text: str
    wrapped: bool = False
    unit: str = ""


def normalize_answer(answer: str) -> str:
    """A canonical spelling of an answer string: equal spellings mean equal answers.

    >>> normalize_answer(r"\\left( 3, \\dfrac{\\pi}{2} \\right).")
    '(3,\\\\frac{\\\\pi}{2})'
    """
    return normalize(answer).text


def normalize_with_flag(answer: str) -> tuple[str, bool]:
    """:func:`normalize_answer`, plus whether the answer was one ``\\text{...}`` group."""
    normalized = normalize(answer)
    return normalized.text, normalized.wrapped


def _is_constant(text: str) -> bool:
    rest = _CONSTANT_COMMANDS.sub("", text)
    return not re.search(r"[A-Za-z]", rest.replace("\\", ""))


def _plain_digits(text: str) -> str:
    """Thousands separators dropped (``10,455``) and a decimal comma read as a point (``1,22``, ``0,111``)
    in a whole-answer number; ``1,234`` is a thousand and more, ``1,2`` stays a list of two numbers."""
    match = _NUMBER_WITH_SEPARATORS.match(text)
    if match:
        sign, digits, fraction, percent = match.groups()
        return sign + digits.replace(",", "") + (fraction or "") + percent
    match = _DECIMAL_COMMA.match(text)
    if match:
        sign, whole, fraction, percent = match.groups()
        if whole == "0" or len(fraction) not in (1, 3):
            return f"{sign}{whole}.{fraction}{percent}"
    return text


def normalize(answer: str) -> Normalized:
    """:func:`normalize_answer` with what normalisation set aside (see :class:`Normalized`)."""
    text = _INVISIBLE.sub(" ", answer).strip()
    plain_unit = _PLAIN_UNIT.match(text.rstrip("."))
    if plain_unit:
        return Normalized(_plain_digits(plain_unit.group(1)), False, plain_unit.group(2).casefold() + (plain_unit.group(3) or ""))
    # `$...$` and `\(...\)` are delimiters, not part of the answer.
    if text.startswith("\\(") and text.endswith("\\)"):
        text = text[2:-2]
    if text.startswith("\\[") and text.endswith("\\]"):
        text = text[2:-2]
    text = text.rstrip(".").strip().strip("$").strip()
    text = _SIZING.sub("", text)
    text = text.replace(",\\!", ",")  # `1,\!000`: MATH's thousands separator, not a list
    text = _SPACING.sub(" ", text)
    text = text.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    text = _LIST_COMMA.sub(_LIST_MARK, text)
    # `\pi r` is not `\pir`: the space that ends a command name before a letter stays (as NUL,
    # which _INVISIBLE removed above, while the other spaces go).
    text = _COMMAND_SPACE.sub("\\1\x00", text)
    text = _SPACES.sub("", text).replace("\x00", " ")
    text = _FRAC_SHORT.sub(r"\\frac{\1}{\2}", text)
    text = _FRAC_SHORT_NUMERATOR.sub(r"\\frac{\1}", text)
    text = _FRAC_SHORT_DENOMINATOR.sub(r"\\frac\1{\2}", text)
    text = text.replace("\\$", "")  # currency
    # `1{,}000` is a thousand, `1{,}5` one and a half: LaTeX's braced comma is either
    text = _BRACED_COMMA.sub(lambda m: "," if re.match(r"\d{3}(?!\d)", text[m.end():]) else ".", text)
    text = _DEGREES.sub("", text)
    text = text.rstrip(".")
    wrapped = _WRAPPED.match(text)
    if wrapped:
        text = wrapped.group(1).strip()
    unit = ""
    match = _UNIT_AFTER_NUMBER.match(text)
    if match:
        text, unit = match.group(1), match.group(2).strip().casefold() + (match.group(3) or "")
    variable = _LEADING_VARIABLE.match(text)
    if variable and _is_constant(variable.group(2).replace(_LIST_MARK, ",")):
        text = variable.group(2)
    if _LIST_MARK in text:
        text = ", ".join(_plain_digits(part) for part in text.split(_LIST_MARK))
    else:
        text = _plain_digits(text)
    if "=" in text and "," in text:
        text = _strip_variables(text)
    return Normalized(text, wrapped is not None, unit)


def _strip_variables(text: str) -> str:
    """``x=1,x=2`` is the list ``1,2`` when every part assigns a constant to the same variable."""
    parts = _split_top_level(text) or []
    matches = [_LEADING_VARIABLE.match(part) for part in parts]
    if len(parts) > 1 and all(matches) and len({m.group(1) for m in matches}) == 1 and all(_is_constant(m.group(2)) for m in matches):
        return ",".join(m.group(2) for m in matches)
    return text


# -- exact rationals ----------------------------------------------------------------------------

_DECIMAL = re.compile(r"^([-+]?)(\d+)?(?:\.(\d+))?$")
_LATEX_FRACTION = re.compile(r"^([-+]?)\\frac\{([-+]?)(\d+)\}\{([-+]?)(\d+)\}$")
_SLASH_FRACTION = re.compile(r"^([-+]?)\(?([-+]?\d+)\)?/\(?([-+]?\d+)\)?$")

PERCENT_CONVENTIONS = ("value", "fraction")
DECIMAL_CONVENTIONS = ("rounded", "exact")


@dataclass(frozen=True, slots=True)
class Conventions:
    """Where graders disagree, what the engine does (see ``docs/answers.md``).

    ``percent``: ``"value"`` (default; ``25\\%`` is ``25``, as the MATH normaliser, Qwen2.5-Math's and
    TTRL's graders read it) or ``"fraction"`` (``25\\%`` is ``0.25``).
    ``decimals``: ``"rounded"`` (default; a decimal with at least ``min_significant`` significant
    digits equals an exact value that rounds or truncates to it at the written precision:
    ``0.3333`` is ``\\frac13``, ``0.333`` is not) or ``"exact"`` (a decimal is only its own value).
    """

    percent: str = "value"
    decimals: str = "rounded"
    min_significant: int = 4

    def __post_init__(self) -> None:
        if self.percent not in PERCENT_CONVENTIONS:
            raise ValueError(f"percent={self.percent!r}: choose one of {', '.join(PERCENT_CONVENTIONS)}")
        if self.decimals not in DECIMAL_CONVENTIONS:
            raise ValueError(f"decimals={self.decimals!r}: choose one of {', '.join(DECIMAL_CONVENTIONS)}")
        if self.min_significant < 1:
            raise ValueError(f"min_significant={self.min_significant!r}: must be at least 1")


DEFAULT_CONVENTIONS = Conventions()


def _decimal(text: str) -> tuple[Fraction, int] | None:
    """Value and decimal places (``-1`` without a decimal point) of a plain decimal number."""
    match = _DECIMAL.match(text)
    if not match or (match.group(2) is None and match.group(3) is None):
        return None
    sign, whole, fractional = match.groups()
    whole = whole or "0"
    places = -1 if fractional is None else len(fractional)
    fractional = fractional or ""
    if len(whole) + len(fractional) > MAX_DIGITS:
        return None
    value = Fraction(int(whole + fractional), 10 ** len(fractional))
    return (-value if sign == "-" else value), places


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


def number_with_places(text: str, conventions: Conventions = DEFAULT_CONVENTIONS) -> tuple[Fraction, int] | None:
    """:func:`plain_number` and the decimal places written (``-1`` for an integer or a fraction)."""
    percent = False
    if text.endswith("\\%"):
        text, percent = text[:-2], True
    elif text.endswith("%"):
        text, percent = text[:-1], True
    found = _decimal(text)
    if found is None:
        value = _fraction(text)
        if value is None:
            return None
        found = (value, -1)
    value, places = found
    if percent and conventions.percent == "fraction":
        return value / 100, (places + 2 if places >= 0 else -1)
    return value, places


def plain_number(text: str, conventions: Conventions = DEFAULT_CONVENTIONS) -> Fraction | None:
    """The exact value of a normalised plain number, fraction, decimal or percentage, else ``None``.

    ``0.5``, ``\\frac{1}{2}``, ``1/2`` and ``\\frac{2}{4}`` all give ``Fraction(1, 2)``; ``50\\%`` gives
    50 (or ½ with ``Conventions(percent="fraction")``). Scientific notation and powers are refused:
    their value could be astronomically large.
    """
    found = number_with_places(text, conventions)
    return None if found is None else found[0]


def _significant_digits(value: Fraction, places: int) -> int:
    digits = str(abs(value.numerator * 10**places // value.denominator)).lstrip("0")
    return len(digits)


def rounds_to(exact: Fraction, decimal: Fraction, places: int) -> bool:
    """Whether ``decimal`` (written with ``places`` decimals) is ``exact`` rounded half-up or truncated."""
    scale = 10**places
    scaled = exact * scale
    truncated = Fraction(int(scaled), scale)  # int() truncates towards zero
    half = Fraction(1, 2) if exact >= 0 else Fraction(-1, 2)
    rounded = Fraction(int(scaled + half), scale)
    return decimal in (truncated, rounded)


# -- fast-path keys -----------------------------------------------------------------------------

_OPENERS = {"(": ")", "[": "]", "\\{": "\\}"}
_WORD = re.compile(r"^[A-Za-z][A-Za-z']*$")


@dataclass(frozen=True, slots=True)
class Key:
    """What the fast paths know about one normalised answer.

    ``kind`` is ``"number"`` (value: a Fraction; ``places``: decimals written, ``-1`` for none;
    ``unit``: a unit written after it), ``"set"`` (a frozenset of Fractions: ``\\{1,2\\}`` and the bare
    list ``1,2``), ``"sequence"`` (brackets plus a tuple of Fractions: points, tuples, intervals),
    ``"word"`` (a case-folded word answer such as ``\\text{Evelyn}``) or ``"text"`` (anything else:
    value is the normalised string). Two answers with equal keys are equivalent. Two keys of decided
    kinds that differ are not equivalent (except a number with and one without a unit, and a rounded
    decimal against an exact value: :func:`keys_decide`); everything else needs the semantic checker.
    """

    kind: str
    value: object
    #: Not part of the key's identity: `0.5` and `\frac12` are one number.
    places: int = field(default=-1, compare=False)
    unit: str = ""

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


def _numbers(parts: list[str], conventions: Conventions) -> tuple[Fraction, ...] | None:
    values = []
    for part in parts:
        value = plain_number(part.strip(), conventions)
        if value is None:
            return None
        values.append(value)
    return tuple(values)


def _composite_key(text: str, conventions: Conventions) -> Key | None:
    for opener, closer in _OPENERS.items():
        if text.startswith(opener) and text.endswith(closer) and len(text) > len(opener) + len(closer):
            inner = text[len(opener) : -len(closer)]
            parts = _split_top_level(inner)
            values = _numbers(parts, conventions) if parts and len(parts) >= 2 else None
            if values is None:
                return None
            if opener == "\\{":
                return Key("set", frozenset(values))
            return Key("sequence", (opener, values))
    for opener, closer in (("(", "]"), ("[", ")")):
        # Half-open intervals: the brackets are part of the meaning.
        if text.startswith(opener) and text.endswith(closer):
            parts = _split_top_level(text[1:-1])
            values = _numbers(parts, conventions) if parts and len(parts) == 2 else None
            return Key("sequence", (opener + closer, values)) if values is not None else None
    if "," in text:
        parts = _split_top_level(text)
        values = _numbers(parts, conventions) if parts and len(parts) >= 2 else None
        if values is not None:
            return Key("set", frozenset(values))
    return None


def answer_key(normalized: str, *, wrapped: bool = False, unit: str = "",
               conventions: Conventions = DEFAULT_CONVENTIONS) -> Key:
    """The fast-path key of a normalised answer (see :class:`Key`).

    ``wrapped`` says the original answer was a ``\\text{...}``, which makes a short word a word
    rather than a product of variables; ``unit`` is the unit normalisation split off.
    """
    if len(normalized) > MAX_PARSE_CHARS:
        return Key("text", normalized)
    number = number_with_places(normalized, conventions)
    if number is not None:
        return Key("number", number[0], number[1], _singular(unit.replace(" ", "")))
    composite = _composite_key(normalized, conventions)
    if composite is not None:
        return composite
    if _WORD.match(normalized) and (wrapped or len(normalized) >= 4):
        # `Evelyn` is a name, not the product E*v*e*l*y*n that a CAS would see.
        return Key("word", normalized.replace(" ", "").casefold())
    return Key("text", normalized)


def _singular(unit: str) -> str:
    """``inches`` is ``inch``, ``meters`` is ``meter``: a unit compares in the singular."""
    if unit.endswith(("ches", "shes", "xes")):
        return unit[:-2]
    if len(unit) > 2 and unit.endswith("s") and not unit.endswith("ss"):
        return unit[:-1]
    return unit


def keys_decide(a: Key, b: Key, conventions: Conventions = DEFAULT_CONVENTIONS) -> bool | None:
    """Equivalence decided by keys alone: ``True``/``False``, or ``None`` when math is needed."""
    if a == b:
        return True
    if a.kind == "number" and b.kind == "number":
        if a.unit and b.unit and a.unit != b.unit:
            return False  # `5 cm` is not `5 km`; `5 cm` is `5`
        if a.value == b.value:
            return True
        return _rounded_equal(a, b, conventions)
    if a.decided and b.decided:
        # Different values of one kind differ; a scalar is never a point, a set or a word; and an
        # ordered tuple is not a set (math-verify says `(2,1)` is `\{1,2\}`; order matters there).
        return False
    return None


def _rounded_equal(a: Key, b: Key, conventions: Conventions) -> bool:
    """A written decimal against an exact value, under ``conventions.decimals``."""
    if conventions.decimals != "rounded" or (a.places >= 0) == (b.places >= 0):
        return False  # two decimals, or two exact values: their values decide
    decimal, exact = (a, b) if a.places >= 0 else (b, a)
    if _significant_digits(decimal.value, decimal.places) < conventions.min_significant:
        return False
    return rounds_to(exact.value, decimal.value, decimal.places)

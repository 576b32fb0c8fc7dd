"""Answer extraction helpers: pure functions from a rollout's text to an answer string or ``None``.

The built-in extractors (``ttrl.plugins.extractors``) are combinations of these. Every helper runs in
time linear in the text (the texts are untrusted and may be megabytes long), never evaluates
anything, and returns ``None`` rather than an empty string, which could otherwise win a vote.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

Extract = Callable[[str], "str | None"]

#: Extractors read only the end of a response, where answers are: regular expressions over a hostile
#: 10 MB text would take seconds in the caller's process, with no time limit to stop them.
SCAN_CHARS = 100_000
#: A ``\boxed{`` that is never closed is skipped; at most this many are tried, from the last one.
_MAX_BOX_TRIES = 8
_BOX_COMMANDS = ("\\boxed", "\\fbox")


def _clean(answer: str | None) -> str | None:
    if answer is None:
        return None
    answer = answer.strip()
    # A trailing full stop ends the sentence, not the answer.
    while answer.endswith((".", "$")) and not answer.endswith("\\$"):
        answer = answer[:-1].rstrip()
    while answer.startswith("$"):
        answer = answer[1:].lstrip()
    return answer or None


def _matching_brace(text: str, open_index: int) -> int | None:
    """Index of the ``}`` closing the ``{`` at ``open_index`` (escaped braces ``\\{`` do not count)."""
    depth = 0
    i = open_index
    end = len(text)
    while i < end:
        char = text[i]
        if char == "\\":
            i += 2
            continue
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return None


def last_boxed(text: str) -> str | None:
    """The content of the last ``\\boxed{...}`` or ``\\fbox{...}``, with braces matched.

    ``\\boxed 5`` (no braces) gives ``5``. An unclosed box is skipped in favour of an earlier one.
    """
    text = text[-SCAN_CHARS:]
    position = len(text)
    for _ in range(_MAX_BOX_TRIES):
        starts = [(text.rfind(cmd, 0, position), cmd) for cmd in _BOX_COMMANDS]
        start, command = max(starts)
        if start < 0:
            return None
        position = start
        after = start + len(command)
        rest = text[after : after + 1]
        if rest == "{":
            close = _matching_brace(text, after)
            if close is None:
                continue
            return _clean(text[after + 1 : close])
        if rest == " ":
            token = re.match(r" +([^\s$]+)", text[after : after + 200])
            if token:
                return _clean(token.group(1))
    return None


_MINERVA = re.compile(r"final answer is\s*\$([^$]{1,2000})\$", re.IGNORECASE)
_ANSWER_IS = re.compile(r"\banswer is[:\s]*(\$[^$]{1,2000}\$|[^\n]{1,300}?)(?=\.\s|\.$|\n|$)", re.IGNORECASE)
# "the answer is 12 apples": the number is the answer; one letter could be a variable (`5 x`).
_NUMBER_THEN_WORDS = re.compile(r"^(-?[\d.,/]*\d)\s+[A-Za-z]{2,}(?:\s+[A-Za-z]+)*$")
_NUMBER = re.compile(r"(?:(?<![\w)])-)?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:/\d+)?")


def _last_match(pattern: re.Pattern[str], text: str) -> re.Match[str] | None:
    last = None
    for last in pattern.finditer(text):  # noqa: B007 - only the last one matters
        pass
    return last


def minerva_final_answer(text: str) -> str | None:
    """Minerva's format: the last "Final Answer: The final answer is $X$"."""
    text = text[-SCAN_CHARS:]
    match = _last_match(_MINERVA, text)
    return _clean(match.group(1)) if match else None


def answer_is(text: str) -> str | None:
    """The last "the answer is X" (X up to the end of the sentence, or one ``$...$``)."""
    text = text[-SCAN_CHARS:]
    match = _last_match(_ANSWER_IS, text)
    if not match:
        return None
    answer = _clean(match.group(1))
    unit = _NUMBER_THEN_WORDS.match(answer or "")
    return unit.group(1) if unit else answer


def last_number(text: str) -> str | None:
    """The last number in the text, as written (``1,234.5``, ``-3``, ``3/4``)."""
    text = text[-SCAN_CHARS:]
    match = _last_match(_NUMBER, text)
    return match.group(0) if match else None


def first_of(*extractors: Extract) -> Extract:
    """An extractor that tries ``extractors`` in order and returns the first answer found."""

    def extract(text: str) -> str | None:
        for extractor in extractors:
            answer = extractor(text)
            if answer is not None:
                return answer
        return None

    return extract


def make_math_extractor(*, final_answer: bool = True, answer_phrase: bool = True, number: bool = True) -> Extract:
    """The ``math`` extractor with a chosen set of fallbacks after the last ``\\boxed{}``.

    Fallbacks, in order: Minerva's "final answer is $X$", "the answer is X", the last number. They
    apply only to a response without any box.
    """
    fallbacks: list[Extract] = []
    if final_answer:
        fallbacks.append(minerva_final_answer)
    if answer_phrase:
        fallbacks.append(answer_is)
    if number:
        fallbacks.append(last_number)
    after_box = first_of(*fallbacks)

    def extract(text: str) -> str | None:
        # A box is the model's explicit answer: an empty or unreadable one is no answer, not a
        # reason to pick a stray number from the working.
        text = text[-SCAN_CHARS:]
        if any(command in text for command in _BOX_COMMANDS):
            return last_boxed(text)
        return after_box(text)

    return extract


# -- multiple choice ----------------------------------------------------------------------------

_CHOICE_STATEMENT = re.compile(
    r"\b(?:answer|option|choice)\b(?:\s+(?:is|would be|should be|must be)\b)?\s*[:\-]?\s*"
    r"(?:(?:option|choice)\s*)?(\*{0,2}\s*[(\[]?\s*([A-Ea-e])\s*[)\]]?\s*\*{0,2})(?![A-Za-z0-9])",
    re.IGNORECASE,
)
_CHOICE_BOLD = re.compile(r"\*\*\s*\(?([A-E])\)?\s*\*\*")
_CHOICE_PAREN = re.compile(r"\(([A-E])\)")
_CHOICE_LINE = re.compile(r"^[ \t*]*\(?([A-E])\)?[ \t*.]*$", re.MULTILINE)
_CHOICE_BOXED = re.compile(r"^(?:\\text\{)?\s*\(?([A-Ea-e])\)?\s*\}?$")


def _statement_choice(text: str) -> str | None:
    found = None
    for match in _CHOICE_STATEMENT.finditer(text):
        letter, written = match.group(2), match.group(1)
        after = text[match.end() : match.end() + 2]
        # A lowercase letter counts only when it stands alone ("Answer: b"), not as a word
        # ("the answer is a bit tricky").
        bare = letter.islower() and "(" not in written and "*" not in written
        if bare and after[:1] in (" ", ".") and after[1:2].isalpha():
            continue  # ... nor an abbreviation ("answer: e.g. ...")
        if letter == "A" and written.strip() == "A" and after[:1] == " " and after[1:2].islower():
            continue  # "the answer is A good ..." reads as an article
        found = letter.upper()
    return found


def extract_choice(text: str) -> str | None:
    """A multiple-choice letter A-E, in the forms models write.

    In order: ``\\boxed{C}``; the last statement such as "Answer: b", "the answer is (C)", "the
    correct option is D"; the last bold ``**C**``; the last ``(C)``; a line holding only a letter.
    A bare capital letter inside a sentence ("A rectangle has ...") is not an answer.
    """
    text = text[-SCAN_CHARS:]
    boxed = last_boxed(text)
    if boxed is not None:
        match = _CHOICE_BOXED.match(boxed)
        if match:
            return match.group(1).upper()
    for finder in (
        _statement_choice,
        lambda t: _group_of_last(_CHOICE_BOLD, t),
        lambda t: _group_of_last(_CHOICE_PAREN, t),
        lambda t: _group_of_last(_CHOICE_LINE, t),
    ):
        letter = finder(text)
        if letter is not None:
            return letter.upper()
    return None


def _group_of_last(pattern: re.Pattern[str], text: str) -> str | None:
    match = _last_match(pattern, text)
    return match.group(1) if match else None


# -- numbers (GSM8K) ----------------------------------------------------------------------------

_GSM8K_MARKER = re.compile(r"####\s*([^\n]{1,200})")


def canonical_number(written: str) -> str | None:
    """A number as written (``$1,234.50``, ``75%``, ``12 cm``) reduced to its digits: ``1234.50``.

    Returns the last number in ``written``, without thousands separators, currency or units.
    """
    written = written[-SCAN_CHARS:]
    match = _last_match(_NUMBER, written)
    if match is None:
        return None
    return match.group(0).replace(",", "")


def extract_number_answer(text: str, *, sources: Sequence[Extract] | None = None) -> str | None:
    """GSM8K-style: the number after ``####``, in a box, after "the answer is", else the last one."""
    text = text[-SCAN_CHARS:]
    marker = _last_match(_GSM8K_MARKER, text)
    candidates = [marker.group(1)] if marker else []
    for source in sources or (last_boxed, answer_is):
        candidate = source(text)
        if candidate is not None:
            candidates.append(candidate)
    for candidate in candidates:
        number = canonical_number(candidate)
        if number is not None:
            return number
    return canonical_number(text)

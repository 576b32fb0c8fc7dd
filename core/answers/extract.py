"""Answer extraction helpers: pure functions from a rollout's text to an answer string or ``None``.

The built-in extractors (``ttrl.plugins.extractors``) are combinations of these. Every helper runs in
time linear in the text (the texts are untrusted and may be megabytes long; the statement-level
helpers read only the last few thousand characters), never evaluates anything, and returns ``None``
rather than an empty string, which could otherwise win a vote.

What the ``math`` extractor takes, in order (see ``docs/answers.md``):

1. an explicit answer statement ("The final answer is $X$", "the answer is X", "Answer: X") written
   *after* the last box;
2. the last ``\\boxed{}`` (several boxes joined only by "and", "or" or commas in the final statement are
   one answer: a list);
3. an explicit answer statement anywhere;
4. the last mathematical expression of the concluding statement: the last ``$…$``, ``\\(…\\)``,
   ``\\[…\\]`` or bold span, else the last number-like run of plain text (a fraction, a ratio, a
   time, a bracketed tuple or interval, taken whole; the value after a trailing ``=``). A digit string
   inside a word (``AZYUK2A``) is no answer, and a response cut off mid-sentence gives no answer
   from this step rather than a wrong digit.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

Extract = Callable[[str], "str | None"]

#: Extractors read only the end of a response, where answers are: regular expressions over a hostile
#: 10 MB text would take seconds in the caller's process, with no time limit to stop them.
SCAN_CHARS = 100_000
#: The statement-level fallbacks (concluding statement, answer phrases) read only this much.
TAIL_CHARS = 4000
#: A ``\\boxed{`` that is never closed is skipped; at most this many are tried, from the last one.
_MAX_BOX_TRIES = 8
#: Boxes joined by a connector in the final statement that form one list answer, at most.
_MAX_BOXES_IN_LIST = 16
_BOX = re.compile(r"\\(?:boxed|Boxed|BOXED|fbox)(?![A-Za-z])")
_BOX_COMMANDS = ("\\boxed", "\\Boxed", "\\BOXED", "\\fbox")
# What may stand between two boxes of one list answer: `\boxed{1}, \boxed{2}`, `... and $\boxed{3}$`.
_LIST_CONNECTOR = re.compile(
    r"^[\s$,;.]*(?:(?:and|or|&|\\text\{\s*(?:and|or)\s*\}|\\quad|\\qquad|\\text\{,\s*\})[\s$,;]*)?$", re.IGNORECASE
)
def _joins_a_list(between: str) -> bool:
    """Whether the text between two answers makes them one list (short: the pattern must not meet
    a hostile 100,000-character gap)."""
    return len(between) <= 40 and _LIST_CONNECTOR.match(between) is not None


_QUOTES = "\"'“”‘’`"


def _clean(answer: str | None) -> str | None:
    if answer is None:
        return None
    answer = answer.strip()
    # A trailing full stop ends the sentence, not the answer; quotes and bold are not the answer.
    for _ in range(4):
        before = answer
        while answer.endswith((".", "$", ",", ";")) and not answer.endswith("\\$"):
            answer = answer[:-1].rstrip()
        while answer.startswith("$"):
            answer = answer[1:].lstrip()
        if answer.startswith("**") and answer.endswith("**") and len(answer) > 4:
            answer = answer[2:-2].strip()
        if len(answer) >= 2 and answer[0] in _QUOTES and answer[-1] in _QUOTES:
            answer = answer[1:-1].strip()
        if answer == before:
            break
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


def _last_box_before(text: str, position: int) -> tuple[int, int, str | None] | None:
    """``(start, end, content)`` of the last readable box starting before ``position``."""
    for _ in range(_MAX_BOX_TRIES):
        start = max(text.rfind(cmd, 0, position) for cmd in _BOX_COMMANDS)
        if start < 0:
            return None
        position = start
        match = _BOX.match(text, start)
        if match is None:
            continue
        after = match.end()
        rest = text[after : after + 1]
        if rest == "{":
            close = _matching_brace(text, after)
            if close is None:
                continue
            return start, close + 1, _clean(text[after + 1 : close])
        if rest == " ":
            token = re.match(r" +([^\s$]+)", text[after : after + 200])
            if token:
                return start, after + token.end(), _clean(token.group(1))
    return None


def _boxed_with_end(text: str) -> tuple[str | None, int] | None:
    """The final boxed answer and where it ends; boxes joined by "and"/"or"/commas form one list."""
    last = _last_box_before(text, len(text))
    if last is None:
        return None
    start, end, content = last
    contents = [content]
    for _ in range(_MAX_BOXES_IN_LIST - 1):
        previous = _last_box_before(text, start)
        if previous is None or not _joins_a_list(text[previous[1] : start]):
            break
        start = previous[0]
        contents.append(previous[2])
    if len(contents) == 1 or any(c is None for c in contents):
        return content, end
    unique = list(dict.fromkeys(reversed(contents)))
    return ", ".join(c for c in unique if c), end


def last_boxed(text: str) -> str | None:
    """The content of the last ``\\boxed{...}`` or ``\\fbox{...}``, with braces matched.

    ``\\boxed 5`` (no braces) gives ``5``; ``\\Boxed{5}`` is read as a box. An unclosed box is skipped
    in favour of an earlier one. Boxes in one final statement joined only by "and", "or" or commas
    (``\\boxed{1}, \\boxed{2}``) are one answer, the list ``1, 2``.
    """
    found = _boxed_with_end(text[-SCAN_CHARS:])
    return found[0] if found else None


# -- answer statements ----------------------------------------------------------------------------

_MINERVA = re.compile(r"final answer is\s*\$([^$]{1,2000})\$", re.IGNORECASE)
# "The final answer is X", "the answer is: X", "Answer: X", "**Final Answer:** X", "my answer would be X".
_ANSWER_STATEMENT = re.compile(
    r"(?:\b(?P<who>the|my|our|your|this|that|each|an?|correct|its)\s+)?(?:\*\*\s*)?"
    r"(?P<final>final\s+)?answers?(?:\s+to\s+(?:the|this)\s+(?:question|problem))?(?:\s*\*\*)?"
    r"(?:\s+(?:is|was|would\s+be|should\s+be|will\s+be|are)\b|\s*(?=:)|\s+(?=\$|\\\())(?:\s*\*\*)?\s*:?(?:\s*\*\*)?",
    re.IGNORECASE,
)
# Words that make "X" an opinion about an answer, not the answer ("Your answer is correct").
_NOT_AN_ANSWER = re.compile(
    r"^(?:correct|incorrect|wrong|right|not\b|false|true\b|unclear|unknown|undefined\b|above|below|"
    r"as\s+follows|the\s+following|in\s+the|given\s+below|yes\b|no\b|that\b|because|since|"
    r"already|still|clearly|obviously|simple|easy|straightforward|missing|none\b|an?\s+[a-z]{2,}|the\s+[a-z]{2,})",
    re.IGNORECASE,
)
_LEAD_WORDS = re.compile(r"^(?:given\s+by|equal\s+to|equals|approximately|about|around|roughly|simply|just|then|thus|therefore|so)\b[\s:]*", re.IGNORECASE)
# "the answer is 12 apples": the number is the answer; one letter could be a variable (`5 x`).
_NUMBER_THEN_WORDS = re.compile(r"^(-?[\d.,/]*\d(?:\\?%)?)\s+[A-Za-z]{2,}(?:\s+[A-Za-z]+)*$")
_WORDS = re.compile(r"^[A-Za-z][A-Za-z'\-]*(?:\s+[A-Za-z][A-Za-z'\-]*){0,3}$")
_SENTENCE_END = re.compile(r"[.!?;](?=\s|$)|\n")


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


def _statement_value(text: str, start: int) -> str | None:
    """The answer written at ``text[start:]`` after an answer phrase (one span, or up to the end of the sentence)."""
    rest = text[start : start + 2000].lstrip()
    if rest.startswith(("$", "\\(")):
        statements = _statements(rest)
        first = statements[0] if statements else ""
        if len(_MATH_SPAN.findall(first)) > 1:
            return _final_expression(first)  # "$x = -1$ or $x = 3$": the list
    for opener, closer in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"), ("**", "**")):
        if rest.startswith(opener):
            close = rest.find(closer, len(opener))
            while close > 0 and opener == "$" and rest[close - 1] == "\\":
                close = rest.find(closer, close + 1)  # `\$` is a currency sign, not the span's end
            if close < 0:
                return None  # an unclosed span: cut off
            inner = rest[len(opener) : close]
            if opener == "**":
                return _phrase_answer(inner)
            return _math_value(inner)
    if rest.startswith(("\\boxed", "\\fbox")):
        return last_boxed(rest[:2000])
    end = _SENTENCE_END.search(rest)
    if end is None:
        if len(rest) > 300 or _looks_cut_off(rest):
            return None
        sentence = rest
    else:
        sentence = rest[: end.start()]
    return _phrase_answer(sentence[:300])


def _phrase_answer(phrase: str) -> str | None:
    phrase = _clean(phrase.strip().strip(_QUOTES + "*").strip())
    if phrase is None or _NOT_AN_ANSWER.match(phrase):
        return None
    phrase = _LEAD_WORDS.sub("", phrase).strip()
    if not phrase:
        return None
    unit = _NUMBER_THEN_WORDS.match(phrase)
    if unit:
        return unit.group(1)
    words = re.sub(r"\\[A-Za-z]+|\\text\{[^{}]*\}", "", phrase)
    if re.search(r"\d", words) and re.search(r"[A-Za-z]{2,}", words):
        return _final_expression(phrase)  # "10 + Jo", "2 (the number of days)": the expression in it
    if _WORDS.match(phrase) or not re.search(r"[A-Za-z]{2,}\s+[A-Za-z]{2,}", phrase):
        # a short word answer ("odd", "Monday"), or something without prose in it
        return _math_value(phrase) if "=" in phrase else phrase
    return _final_expression(phrase)


def _answer_statement(text: str) -> tuple[str, int] | None:
    """The last explicit answer statement: its answer and where the statement starts."""
    found = None
    for match in _ANSWER_STATEMENT.finditer(text):
        who = (match.group("who") or "").lower()
        if who in ("your", "this", "that", "each", "a", "an", "its"):
            continue  # "Your answer is correct", "This answer is incorrect"
        value = _statement_value(text, match.end())
        if value is not None:
            found = (value, match.start())
    return found


def answer_is(text: str) -> str | None:
    """The last explicit answer statement: "the answer is X", "The final answer is $X$", "Answer: X".

    X is one ``$…$``/``\\(…\\)``/bold span, or the rest of the sentence; a number followed by words
    is the number (``12 apples``). "Your answer is correct" or "This answer is incorrect" is no answer.
    """
    found = _answer_statement(text[-TAIL_CHARS:])
    return found[0] if found else None


# -- the last expression of the concluding statement ------------------------------------------------

_MATH_SPAN = re.compile(
    r"\$\$(?P<d>[^$]{1,2000})\$\$|(?<!\\)\$(?P<i>(?:\\\$|[^$\n]){1,1000}?)(?<!\\)\$|\\\((?P<p>.{1,1000}?)\\\)|\\\[(?P<b>.{1,2000}?)\\\]|\*\*(?P<bold>[^*\n]{1,200})\*\*",
    re.DOTALL,
)
# A number-like run of plain text: numbers joined by operators, `3/4`, `12:00`, `1,234`, `2.5`, `75%`.
_NUM = r"(?:\d+(?:[.,]\d+)*|\.\d+)"
_PLAIN_RUN = re.compile(
    rf"(?<![A-Za-z0-9_.\\])(?:(?<![\d)\]])(?<![\d)\]]\s)[-−]\s?)?{_NUM}(?:\s?[-+*/×÷^:]\s?[-−]?{_NUM})*(?:\s?%|\\%)?(?![A-Za-z0-9_]|\.\d)"
)
_IN_WORD = re.compile(r"[A-Za-z_]\d|\d[A-Za-z_]")
_COMPARISON_BEFORE = re.compile(r"(?:([A-Za-z])\s*)?(<=|>=|≤|≥|<|>|\\[lg]eq?|\\[lg]t)\s*$")
_RELATION_SPLIT = re.compile(r"=|\\approx(?![A-Za-z])|≈")
_SIMPLE_LEFT = re.compile(r"^\s*(?:[A-Za-z](?:_\{?\w+\}?)?'*|\\[A-Za-z]+|[A-Za-z]\([A-Za-z, ]*\)|\\text\{[^{}]*\})\s*$")
_CUT_OFF_WORDS = frozenset(
    "the a an of to is are was be and or by with for as that which we in on at from than then because "
    "this these its their our into gives get gets equals equal plus minus times divided multiply add "
    "subtract has have will can would should let times".split()
)


_DOLLAR = re.compile(r"(?<!\\)\$")


def _looks_cut_off(text: str) -> bool:
    """Whether ``text`` ends mid-sentence or mid-expression (a response cut at its token limit)."""
    tail = text.rstrip()
    if not tail:
        return False
    if tail[-1] in "+-*/=^_({[,\\×÷:" or tail.endswith(("\\frac", "\\sqrt", "\\cdot", "\\times")):
        return True
    if len(_DOLLAR.findall(tail)) % 2 or tail.rfind("\\[") > tail.rfind("\\]") or tail.rfind("\\(") > tail.rfind("\\)"):
        return True
    if re.search(r"\d\s*[x×]$", tail):
        return True  # "So, 8 x": a product cut before its second factor
    last_word = re.search(r"([A-Za-z]+)\W*$", tail[-40:])
    return bool(last_word and tail[-1].isalpha() and last_word.group(1).lower() in _CUT_OFF_WORDS)


def _split_top(text: str, pattern: re.Pattern[str]) -> list[str]:
    """``text`` split at matches of ``pattern`` outside braces and brackets."""
    parts, depth, start, i = [], 0, 0, 0
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text) and text[i + 1] in "{}":
            i += 2
            continue
        if char in "{([":
            depth += 1
        elif char in "})]":
            depth -= 1
        elif depth == 0:
            match = pattern.match(text, i)
            if match and match.end() > i:
                parts.append(text[start:i])
                start = i = match.end()
                continue
        i += 1
    parts.append(text[start:])
    return parts


def _math_value(expression: str) -> str | None:
    """An expression's answer: ``6 + 9 = 15`` gives ``15``; ``x = 5`` and ``f(y) = y`` stay whole."""
    expression = expression.strip()
    if _BOX.search(expression):
        return last_boxed(expression)
    parts = _split_top(expression, _RELATION_SPLIT)
    if len(parts) > 1:
        if len(parts) == 2 and _SIMPLE_LEFT.match(parts[0]) and "=" in expression:
            return _clean(expression)
        return _clean(parts[-1])
    return _clean(expression)


def _bracket_group(statement: str, at: int) -> tuple[int, int] | None:
    """The innermost bracket group that is open at ``at`` in ``statement``: ``(start, end)``, else ``None``."""
    depth, start = 0, None
    for i in range(at - 1, max(-1, at - 300), -1):
        char = statement[i]
        if char in ")]}":
            depth += 1
        elif char in "([{":
            if depth == 0:
                start = i
                break
            depth -= 1
    if start is None:
        return None
    depth = 0
    for j in range(start, min(len(statement), start + 300)):
        char = statement[j]
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
            if depth == 0:
                return start, j + 1
    return start, -1


def _plain_expression(statement: str) -> str | None:
    """The last number-like run of plain text, taken whole, or ``None`` when it is part of something else."""
    for _ in range(4):
        run = _last_match(_PLAIN_RUN, statement)
        if run is None:
            return None
        group = _bracket_group(statement, run.start())
        if group is not None:
            start, end = group
            if end < 0:
                return None  # "(3, 2" cut off: part of something we cannot read
            inner = statement[start + 1 : end - 1]
            if re.fullmatch(r"[\d\s.,+\-−/\\a-z{}∞]*", inner) and "," in inner and not re.search(r"[a-z]{3,}", inner.replace("infty", "")):
                return statement[start:end]  # a tuple, a point, an interval
            if re.search(r"[A-Za-z]{2,}", inner):
                statement = statement[:start]  # a remark in parentheses: "(in base 10)"
                continue
            return None
        comparison = _COMPARISON_BEFORE.search(statement[max(0, run.start() - 12) : run.start()])
        if comparison:
            if not comparison.group(1):
                return None
            return f"{comparison.group(1)} {comparison.group(2)} {run.group(0)}"
        before = statement[: run.start()].rstrip()
        if before.endswith("^"):
            return None
        text = run.group(0).replace("−", "-")
        return text.replace(" ", "") if re.fullmatch(r"[-\d.,:/%\\ ]+", text) else text
    return None


def _statements(text: str) -> list[str]:
    """The tail of ``text`` cut into statements at line breaks and sentence ends outside math spans."""
    tail = text[-TAIL_CHARS:]
    pieces, cursor = [], 0
    for span in _MATH_SPAN.finditer(tail):
        pieces.append((False, tail[cursor : span.start()]))
        pieces.append((True, span.group(0)))
        cursor = span.end()
    pieces.append((False, tail[cursor:]))
    statements, current = [], []
    for is_math, piece in pieces:
        if is_math:
            current.append(piece)
            continue
        # A full stop ends a sentence unless it is a decimal point (`2.5`).
        for chunk in re.split(r"(\n+|(?<!\d)[.!?](?=\s|$)|[.!?](?=\s+[A-Z]))", piece):
            if chunk and (chunk.startswith("\n") or chunk in (".", "!", "?")):
                statements.append("".join(current))
                current = []
            else:
                current.append(chunk)
    statements.append("".join(current))
    return [s for s in statements if s.strip()]


def _final_expression(statement: str) -> str | None:
    """The last mathematical expression of one statement: a math or bold span, else a plain run.
    Spans joined only by "and", "or" or commas at the end of the statement are one list answer
    (``$x=2$ or $x=3$``)."""
    spans = list(_MATH_SPAN.finditer(statement))
    if spans:
        last = spans[-1]
        after = statement[last.end() :]
        plain = _plain_expression(after) if re.search(r"\d", after) else None
        if plain is not None:
            return plain
        if last.group("bold") is not None:
            return _phrase_answer(last.group("bold"))
        values = [_span_value(last)]
        for previous, following in zip(reversed(spans[:-1]), reversed(spans[1:])):
            if previous.group("bold") is not None or not _joins_a_list(statement[previous.end() : following.start()]):
                break
            values.append(_span_value(previous))
        if len(values) > 1 and all(values):
            return ", ".join(dict.fromkeys(reversed(values)))  # type: ignore[arg-type]
        return values[0]
    if _IN_WORD.search(statement) and _plain_expression(statement) is None:
        return None
    return _plain_expression(statement)


def _span_value(span: re.Match[str]) -> str | None:
    inner = next(g for g in (span.group("d"), span.group("i"), span.group("p"), span.group("b")) if g is not None)
    return _math_value(inner)


def concluding_expression(text: str) -> str | None:
    """The last mathematical expression of the concluding statement, or ``None``.

    The concluding statement is the last one with a digit or a math span (a closing "I hope it
    helps." is skipped, at most three of them). A response whose end is cut off gives ``None``.
    """
    text = text[-SCAN_CHARS:]
    if _looks_cut_off(text):
        return None
    statements = _statements(text)
    for statement in reversed(statements[-4:]):
        statement = statement.strip().strip(_QUOTES)
        if _is_bare_math(statement):
            return _math_value(statement)  # the whole statement is an expression: `\frac{1}{2}`, `x^2+1`
        if re.search(r"\d|\$|\\\(|\\\[|\*\*", statement):
            return _final_expression(statement)
    return None


_LATEX_WORDS = re.compile(r"\\(?:text|mathrm|mbox|textbf|operatorname|begin|end)\{[^{}]*\}|\\[A-Za-z]+")


def _is_bare_math(statement: str) -> bool:
    """Whether a statement is one mathematical expression and no prose (a response that is only
    ``\\frac{1}{2}``, ``6 - 5i``, ``\\pi`` or ``16 - 7 = 9``)."""
    statement = statement.strip()
    if not statement or len(statement) > 300 or "$" in statement or "**" in statement:
        return False
    rest = _LATEX_WORDS.sub(" ", statement)
    if re.search(r"[A-Za-z]{2,}", rest) or re.search(r"[.!?;]\s", rest + " ") and not re.search(r"\d\.\d", rest):
        return False
    if rest.count("(") != rest.count(")") or rest.count("[") + rest.count("(") < rest.count("]") + rest.count(")") - 1:
        return False
    return bool(re.search(r"[\dA-Za-z\\]", statement)) and not statement.endswith(":")


def last_number(text: str) -> str | None:
    """The last number in the text, as written (``1,234.5``, ``-3``, ``3/4``)."""
    text = text[-SCAN_CHARS:]
    match = _last_match(_NUMBER, text)
    return match.group(0) if match else None


_NUMBER = re.compile(r"(?:(?<![\w)])-)?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:/\d+)?")


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
    """The ``math`` extractor with a chosen set of fallbacks around the last ``\\boxed{}``.

    ``final_answer``/``answer_phrase``: explicit answer statements ("The final answer is $X$", "the
    answer is X", "Answer: X"); one written after the last box wins over the box. ``number``: the last
    expression of the concluding statement, for a response with neither a box nor an answer statement.
    """

    def extract(text: str) -> str | None:
        text = text[-SCAN_CHARS:]
        boxed = _boxed_with_end(text) if any(c in text for c in _BOX_COMMANDS) else None
        statement = None
        if final_answer or answer_phrase:
            tail_start = max(0, len(text) - TAIL_CHARS)
            found = _answer_statement(text[tail_start:])
            if found is not None:
                statement = (found[0], found[1] + tail_start)
                if not answer_phrase and not re.match(r"(?i)(?:the\s+)?(?:\*\*\s*)?final", text[statement[1] : statement[1] + 20]):
                    statement = None
        if boxed is not None:
            # "The final answer is $10,455$" after an intermediate box is the answer.
            if statement is not None and statement[1] >= boxed[1]:
                return statement[0]
            # A box is the model's explicit answer: an empty or unreadable one is no answer, not a
            # reason to pick a stray number from the working.
            return boxed[0]
        if statement is not None:
            return statement[0]
        if any(c in text for c in _BOX_COMMANDS):
            return None
        if final_answer:
            minerva = minerva_final_answer(text)
            if minerva is not None:
                return minerva
        return concluding_expression(text) if number else None

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

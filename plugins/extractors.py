"""Built-in answer extractors: ``math``, ``multiple_choice`` and ``number``."""

from __future__ import annotations

import re

from ttrl.core.hookspecs import hookimpl


def _last_boxed(text: str) -> str | None:
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if start < 0:
        return None
    brace = text.find("{", start)
    if brace < 0:
        return None
    depth = 0
    for i in range(brace, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                inner = text[brace + 1 : i].strip()
                return inner or None
    return None


_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def extract_math(text: str) -> str | None:
    """The last \\boxed{...} answer."""
    return _last_boxed(text)


def extract_number(text: str) -> str | None:
    """The last number in the text."""
    found = _NUMBER.findall(text)
    return found[-1].replace(",", "") if found else None


_CHOICE = re.compile(r"\b([A-E])\b")


def extract_multiple_choice(text: str) -> str | None:
    """The last standalone letter A-E."""
    found = _CHOICE.findall(text)
    return found[-1] if found else None


@hookimpl
def register_extractors(register):
    register("math", extract_math, compare="math")
    register("number", extract_number, compare="number")
    register("multiple_choice", extract_multiple_choice, compare="exact", aliases=("mc",))

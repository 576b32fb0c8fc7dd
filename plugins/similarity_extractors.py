"""Built-in extractors for outputs without an exact answer: ``free_form`` (text) and ``code``.

Registered through the same ``register_extractors`` hook third-party plugins use. Their answers are
compared by similarity (:mod:`ttrl.core.similarity`): ``free_form`` by ROUGE-L, ``code`` by the
structural AST similarity. Like the math extractor they read only the end of a response (a hostile
text may be megabytes long), run in time linear in what they read (no regular expression here can
backtrack over more than a few characters), never evaluate anything, and return ``None`` rather than
an empty string. See ``docs/answers.md``.

``free_form`` takes, in order:

1. the text after the last ``</think>`` when there is one (reasoning is not the answer);
2. after the last final-answer marker (a line starting ``Answer:``, ``Final answer:``, ``Summary:``,
   ``TL;DR:``; a bold ``**Answer:**`` anywhere; "the (final) answer is"), the rest of that paragraph;
3. else the last paragraph (blank-line separated) that is not sign-off boilerplate ("I hope this
   helps", "Let me know if ...");

then drops an opening "Sure!"/"Certainly!", Markdown emphasis and heading marks, and collapses
whitespace.

``code`` takes a fenced code block (```` ``` ```` or ``~~~`` fences at the start of a line): the
last closed block whose language tag is Python (``python``, ``py``, ``python3``, ``py3``), else the
last closed untagged block, else the last closed block in any language, else a block left open by a
response cut short (it runs to the end). Within that choice a block that defines something (a
``def`` or ``class`` line) comes before one that does not, so the usage example after a function
(``print(add(1, 2))``) is not taken for the answer. Without any fence: the text from the first line
that starts like Python code (``def``, ``class``, ``import``, ``from``, ``async def``) to the end.
"""

from __future__ import annotations

import re

from ttrl.core.hookspecs import hookimpl

#: Extractors read at most this many characters from the end of a response.
SCAN_CHARS = 100_000
#: The free-form answer is looked for in this many final characters, and is at most this long.
FREE_FORM_TAIL_CHARS = 4_000

_MARKER = re.compile(
    r"(?im)(?:^[ \t]{0,8}(?:[#>*_][#>*_ \t]{0,8})?(?:final[ \t]{1,4}answer|answer|summary|tl;?[ \t]?dr)[ \t]{0,4}"
    r"(?:\*\*|__)?[ \t]{0,4}[:：])|(?:\bthe[ \t]{1,4}(?:final[ \t]{1,4})?answer[ \t]{1,4}is\b[ \t]{0,4}:?)"
    r"|(?:\*\*(?:final[ \t]{1,4})?answer[ \t]{0,4}[:：]?[ \t]{0,4}\*\*[ \t]{0,4}[:：]?)"
)
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]{0,64}\n")
_SIGN_OFF = re.compile(
    r"(?i)\b(?:i hope (?:this|that|it) helps|let me know if|feel free to (?:ask|reach)|happy to help|"
    r"if you have any (?:other |more |further )?questions)"
)
_OPENER = re.compile(
    r"(?i)^(?:sure|certainly|of course|absolutely|great question|good question|okay|ok)[ \t]{0,4}[!.,:][ \t]{0,4}"
)
_EMPHASIS = re.compile(r"\*\*|__|^#{1,6}[ \t]", re.MULTILINE)
_WHITESPACE = re.compile(r"\s+")
_CONTENT = re.compile(r"[^\W_]")

_FENCE = re.compile(r"(?m)^[ \t]{0,3}(`{3,}|~{3,})[ \t]{0,8}([^\s`~{]*)[^\n]*$")
_PYTHON_TAGS = frozenset({"python", "py", "python3", "py3", "ipython", "pycon"})
_DEFINITION = re.compile(r"(?m)^[ \t]{0,32}(?:async[ \t]{1,4})?(?:def|class)[ \t]")
_CODE_START = re.compile(r"(?m)^(?:def |class |import |from [\w.]{1,100} import |async def )")


def _finish_free_form(answer: str) -> str | None:
    answer = _OPENER.sub("", answer.strip())
    answer = _EMPHASIS.sub("", answer)
    answer = _WHITESPACE.sub(" ", answer).strip()[:FREE_FORM_TAIL_CHARS]
    return answer if _CONTENT.search(answer) else None  # "**" or "..." is no answer


def extract_free_form(text: str) -> str | None:
    """The final answer part of a free-form response (see the module docstring), or ``None``."""
    text = text[-SCAN_CHARS:]
    think_end = text.rfind("</think>")
    if think_end >= 0:
        text = text[think_end + len("</think>") :]
    tail = text[-FREE_FORM_TAIL_CHARS:]
    last = None
    for last in _MARKER.finditer(tail):
        pass
    if last is not None:
        rest = tail[last.end() :].lstrip()
        paragraph = _PARAGRAPH_BREAK.split(rest, maxsplit=1)[0]
        answer = _finish_free_form(paragraph)
        if answer:
            return answer
    paragraphs = [p for p in _PARAGRAPH_BREAK.split(tail) if p.strip()]
    while paragraphs:
        paragraph = paragraphs.pop()
        if len(paragraphs) and _SIGN_OFF.search(paragraph):
            continue  # a sign-off is not the answer, unless it is all there is
        answer = _finish_free_form(paragraph)
        if answer:
            return answer
    return None


def fenced_blocks(text: str) -> list[tuple[str, str, bool]]:
    """``(language tag, content, closed)`` of each fenced block, in order; an unclosed last block runs
    to the end."""
    blocks = []
    opening = None  # (fence, tag, content start)
    for match in _FENCE.finditer(text):
        fence, tag = match.group(1), match.group(2)
        if opening is None:
            opening = (fence, tag.lower(), match.end() + 1)
        elif fence[0] == opening[0][0] and len(fence) >= len(opening[0]) and not tag:
            blocks.append((opening[1], text[opening[2] : match.start()], True))
            opening = None
    if opening is not None:
        blocks.append((opening[1], text[opening[2] :], False))
    return blocks


def extract_code(text: str) -> str | None:
    """The code of a response: the last Python fenced block, else the last block (see the module docstring)."""
    text = text[-SCAN_CHARS:]
    blocks = [block for block in fenced_blocks(text) if block[1].strip()]
    tiers = (lambda tag, closed: closed and tag in _PYTHON_TAGS, lambda tag, closed: closed and not tag,
             lambda tag, closed: closed, lambda tag, closed: True)
    for wanted in tiers:
        chosen = [code for tag, code, closed in blocks if wanted(tag, closed)]
        if chosen:
            defining = [code for code in chosen if _DEFINITION.search(code)]
            return (defining or chosen)[-1].strip("\n").rstrip() or None
    start = _CODE_START.search(text)
    if start is None:
        return None
    return text[start.start() :].rstrip() or None


@hookimpl
def register_extractors(register):
    register(
        "free_form",
        extract_free_form,
        compare="rouge_l",
        aliases=("text", "qa"),
        description="Final answer part of free text: after Answer:/Final answer:, else the last paragraph; compared by ROUGE-L.",
    )
    register(
        "code",
        extract_code,
        compare="ast",
        aliases=("python",),
        description="Last fenced code block (Python-tagged first), else bare code; compared by AST similarity.",
    )

"""Reading prompts for ``ttrl rollouts generate`` from the formats people already have.

* TTRL's test-time sets: a JSON array of ``{"prompt", "answer", "id", "source"}`` (AIME-TTT.json, ...);
* GSM8K JSON Lines: ``{"question", "answer"}`` where the answer is a worked solution ending in ``#### n``;
* ttrl's own rollout files (docs/formats.md) or prompt files: JSON Lines with ``id``, ``prompt`` and
  optionally ``reference``, ``task`` (any ``rollouts`` are ignored).

Every format gives :class:`PromptItem` (id, prompt, reference, task). Problems are reported with the
file name and, for JSON Lines, the line number.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ttrl.core.data import DEFAULT_TASK
from ttrl.core.errors import DataFileError
from ttrl.core.rollout_files import lone_surrogate, open_data_file


@dataclass(frozen=True)
class PromptItem:
    id: str
    prompt: str
    reference: str | None = None
    task: str = DEFAULT_TASK
    #: Extra fields copied into the output line's ``meta`` (e.g. a generated problem's level).
    meta: dict[str, Any] = field(default_factory=dict)


#: TTRL ``source`` values whose answers are letters, not math expressions.
_MULTIPLE_CHOICE_SOURCES = {"gpqa", "gpqa_diamond", "mmlu", "mmlu_pro"}


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def gsm8k_final_answer(solution: str) -> str | None:
    """The number after GSM8K's ``####`` marker, without thousands separators."""
    marker = solution.rfind("####")
    if marker < 0:
        return None
    answer = solution[marker + 4 :].strip().replace(",", "")
    return answer or None


def _from_ttrl_json(path: Path, items: list[Any]) -> list[PromptItem]:
    out = []
    for index, obj in enumerate(items):
        where = f"{path}: item {index}"
        if not isinstance(obj, dict) or not isinstance(obj.get("prompt"), str):
            raise DataFileError(f"{where}: expected an object with a string 'prompt' (TTRL format: prompt, answer, id).")
        source = str(obj.get("source") or path.stem).lower()
        task = "multiple_choice" if source in _MULTIPLE_CHOICE_SOURCES else DEFAULT_TASK
        # TTRL ids (e.g. "0", "test/algebra/1.json") are only unique within one file: prefix with its name.
        raw_id = _text(obj.get("id"))
        out.append(PromptItem(
            id=f"{path.stem}/{raw_id if raw_id is not None else index}",
            prompt=obj["prompt"],
            reference=_text(obj.get("answer")),
            task=task,
        ))
    return out


def _from_jsonl_line(path: Path, lineno: int, obj: Any) -> PromptItem:
    where = f"{path}:{lineno}"
    if not isinstance(obj, dict):
        raise DataFileError(f"{where}: expected a JSON object, got {type(obj).__name__}.")
    if isinstance(obj.get("prompt"), str):
        if obj.get("id") is None:
            raise DataFileError(f"{where}: a prompt line needs an 'id' (ttrl rollout/prompt format: id, prompt, reference).")
        reference = obj.get("reference", obj.get("answer"))
        return PromptItem(id=str(obj["id"]), prompt=obj["prompt"], reference=_text(reference), task=str(obj.get("task") or DEFAULT_TASK))
    if isinstance(obj.get("question"), str):
        solution = obj.get("answer")
        reference = gsm8k_final_answer(solution) if isinstance(solution, str) else None
        if reference is None:
            raise DataFileError(f"{where}: GSM8K line without a final answer: 'answer' must end with '#### <number>'.")
        raw_id = obj.get("id", obj.get("idx", lineno - 1))
        return PromptItem(id=f"{path.stem}/{raw_id}", prompt=obj["question"], reference=reference, task="number")
    keys = ", ".join(sorted(obj)) or "none"
    raise DataFileError(
        f"{where}: unrecognised line (keys: {keys}). Expected ttrl's format (id, prompt[, reference]) "
        "or GSM8K's (question, answer ending in '#### n')."
    )


def _from_jsonl(path: Path, lines: Iterable[tuple[int, str]]) -> list[PromptItem]:
    out = []
    for lineno, line in lines:
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataFileError(f"{path}:{lineno}: not valid JSON ({exc.msg} at column {exc.colno}).") from None
        except (ValueError, RecursionError) as exc:  # nesting or a number beyond what the parser converts
            raise DataFileError(f"{path}:{lineno}: not readable JSON ({type(exc).__name__}).") from None
        out.append(_from_jsonl_line(path, lineno, obj))
    return out


def load_prompts(path: str | Path) -> list[PromptItem]:
    """All prompts in ``path`` (format detected from the content); ids are checked for uniqueness."""
    path = Path(path)
    with open_data_file(path, "Data file") as handle:
        raw = handle.read()
    try:
        text = raw.decode("utf-8").removeprefix("\ufeff")  # a byte-order mark is not content
    except UnicodeDecodeError as exc:
        raise DataFileError(f"Data file {path} is not UTF-8 text (byte {exc.start}).") from None
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataFileError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg}).") from None
        except (ValueError, RecursionError) as exc:
            raise DataFileError(f"{path}: not readable JSON ({type(exc).__name__}).") from None
        prompts = _from_ttrl_json(path, items)
    else:
        lines = [(n, line) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
        prompts = _from_jsonl(path, lines)
    if not prompts:
        raise DataFileError(f"Data file {path} has no prompts.")
    seen: set[str] = set()
    for item in prompts:
        where = lone_surrogate([item.id, item.prompt, item.reference])
        if where:
            raise DataFileError(f"{path}: prompt {item.id!r} holds a lone UTF-16 surrogate (\\ud800-\\udfff), which is not text.")
        if item.id in seen:
            raise DataFileError(f"{path}: duplicate prompt id {item.id!r}; ids must be unique because resume relies on them.")
        seen.add(item.id)
    return prompts

"""Reading and writing CONTRACT.md's JSON Lines files (rollout files and estimate files).

A malformed line is reported with the file name, its line number and what is wrong, and the other lines
are still read; ``strict=True`` makes the first bad line fatal.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, StrictStr, ValidationError

from .data import DEFAULT_TASK, TOKEN_FIELDS, Estimate, GroupRecord, Rollout, RolloutGroup
from .errors import DataFileError


class _RolloutLine(BaseModel):
    model_config = ConfigDict(extra="ignore")

    text: StrictStr
    answer: StrictStr | None = None
    stats: dict[str, float | None] | None = None
    token_entropy: list[float] | None = None
    token_self_certainty: list[float] | None = None
    token_logprob: list[float] | None = None
    token_confidence: list[float] | None = None


class _GroupLine(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: StrictStr
    prompt: StrictStr
    rollouts: list[_RolloutLine]
    task: StrictStr | None = None
    reference: StrictStr | int | float | None = None
    meta: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class LineError:
    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


@dataclass(slots=True)
class ReadResult:
    records: list[GroupRecord] = field(default_factory=list)
    errors: list[LineError] = field(default_factory=list)

    @property
    def num_rollouts(self) -> int:
        return sum(len(r.group.rollouts) for r in self.records)


def _describe_validation_error(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"]).lstrip(".")
        given = err.get("input")
        shown = repr(given)
        if len(shown) > 60:
            shown = shown[:57] + "..."
        parts.append(f"{loc or 'line'}: {err['msg']} (got {shown})")
    more = len(exc.errors()) - 3
    if more > 0:
        parts.append(f"and {more} more problem(s)")
    return "; ".join(parts)


def _reference_text(value: str | int | float | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _to_rollout(line: _RolloutLine) -> Rollout:
    stats = {k: float(v) for k, v in (line.stats or {}).items() if v is not None}
    arrays = {
        name: (None if getattr(line, name) is None else np.asarray(getattr(line, name), dtype=np.float64))
        for name in TOKEN_FIELDS
    }
    return Rollout(text=line.text, answer=line.answer, stats=stats, **arrays)


def parse_group_line(obj: Any, source: str | None = None) -> GroupRecord:
    """Validate one decoded JSON object as a rollout-file line. Raises ``ValueError`` with the reason."""
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    try:
        line = _GroupLine.model_validate(obj)
    except ValidationError as exc:
        raise ValueError(_describe_validation_error(exc)) from None
    group = RolloutGroup(
        id=line.id,
        prompt=line.prompt,
        rollouts=[_to_rollout(r) for r in line.rollouts],
        task=line.task or DEFAULT_TASK,
        meta=dict(line.meta or {}),
    )
    return GroupRecord(group=group, reference=_reference_text(line.reference), source=source)


def iter_rollout_file(path: str | Path) -> Iterator[GroupRecord | LineError]:
    """Yield a :class:`GroupRecord` per good line and a :class:`LineError` per bad one, in order."""
    path = Path(path)
    name = str(path)
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise DataFileError(f"Rollout file {name} does not exist. Check the path given to --data.") from None
    except OSError as exc:
        raise DataFileError(f"Cannot open rollout file {name}: {exc.strerror}.") from None
    seen: dict[str, int] = {}
    with handle:
        for lineno, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield LineError(name, lineno, f"not valid UTF-8 (byte {exc.start})")
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                yield LineError(name, lineno, f"not valid JSON: {exc.msg} at column {exc.colno}")
                continue
            try:
                record = parse_group_line(obj, source=f"{name}:{lineno}")
            except ValueError as exc:
                yield LineError(name, lineno, str(exc))
                continue
            gid = record.group.id
            if gid in seen:
                yield LineError(name, lineno, f"duplicate id {gid!r} (first on line {seen[gid]})")
                continue
            seen[gid] = lineno
            yield record


def read_rollout_file(path: str | Path, *, strict: bool = False) -> ReadResult:
    """Read a whole rollout file. With ``strict``, the first malformed line raises :class:`DataFileError`."""
    result = ReadResult()
    for item in iter_rollout_file(path):
        if isinstance(item, LineError):
            if strict:
                raise DataFileError(
                    f"{item}. The file was read in strict mode; fix the line or drop --strict "
                    "to skip malformed lines with a warning."
                )
            result.errors.append(item)
        else:
            result.records.append(item)
    return result


def _finite_or_none(values: np.ndarray | None) -> list[float] | None:
    if values is None:
        return None
    return [float(v) for v in values]


def record_to_json(record: GroupRecord) -> dict[str, Any]:
    """The CONTRACT.md JSON object for a group record (inverse of :func:`parse_group_line`)."""
    group = record.group
    rollouts = []
    for r in group.rollouts:
        item: dict[str, Any] = {"text": r.text}
        if r.answer is not None:
            item["answer"] = r.answer
        if r.stats:
            item["stats"] = dict(r.stats)
        for name in TOKEN_FIELDS:
            values = getattr(r, name)
            if values is not None:
                item[name] = _finite_or_none(values)
        rollouts.append(item)
    out: dict[str, Any] = {"id": group.id, "prompt": group.prompt, "task": group.task}
    if record.reference is not None:
        out["reference"] = record.reference
    out["rollouts"] = rollouts
    if group.meta:
        out["meta"] = group.meta
    return out


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, allow_nan=False, default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def write_rollout_file(path: str | Path, records: Iterable[GroupRecord], *, append: bool = False) -> int:
    """Write (or append) group records as JSON Lines. Returns the number of lines written."""
    count = 0
    with Path(path).open("a" if append else "w", encoding="utf-8") as handle:
        for record in records:
            write_json_line(handle, record_to_json(record))
            count += 1
    return count


def estimate_to_json(group_id: str, estimator: str, estimate: Estimate) -> dict[str, Any]:
    """One line of an estimate file (CONTRACT.md)."""
    return {
        "id": group_id,
        "estimator": estimator,
        "label": estimate.label,
        "rewards": [float(r) for r in estimate.rewards],
        "diagnostics": _clean_json(
            estimate.diagnostics
            if estimate.train_indices is None
            else {**estimate.diagnostics, "train_indices": list(estimate.train_indices)}
        ),
    }


def _clean_json(value: Any) -> Any:
    """Diagnostics may hold NaN/inf or numpy scalars; estimate files must be strict JSON."""
    if isinstance(value, dict):
        return {str(k): _clean_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_clean_json(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_clean_json(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json_line(handle: IO[str], obj: Any) -> None:
    handle.write(_dumps(_clean_json(obj)) + "\n")


def drop_partial_last_line(path: str | Path) -> None:
    """Drop a partial last line left by a process killed mid-write, so that lines appended next stay whole."""
    with Path(path).open("rb+") as handle:
        size = handle.seek(0, 2)
        if size == 0:
            return
        handle.seek(size - 1)
        if handle.read(1) == b"\n":
            return
        handle.seek(0)
        handle.truncate(handle.read().rfind(b"\n") + 1)

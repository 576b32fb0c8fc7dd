"""Reading and writing ttrl's JSON Lines files (rollout files and estimate files; docs/formats.md).

A malformed line is reported with the file name, its line number and what is wrong, and the other lines
are still read; ``strict=True`` makes the first bad line fatal. "Malformed" is one class decided here,
for every command: bytes that are not UTF-8, text that is not JSON (including nesting too deep for the
parser and numbers too long to convert), a line that is not an object, a missing or mistyped field,
a non-finite statistic (``NaN``, ``Infinity``, ``1e999``), a string with a lone UTF-16 surrogate
(which cannot be written back as UTF-8) and a duplicate id. A group with no rollouts is not malformed
but has nothing to estimate or score: it is reported as left out. A file with no usable group at all
is an error that says what the file looks like (a JSON array, a prompt file, empty, ...).

Every file ttrl writes whole is written to a temporary file beside it and renamed into place
(:func:`atomic_write`), so an interrupted or failed command never leaves half a file.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Annotated, Any

import numpy as np
from pydantic import AllowInfNan, BaseModel, ConfigDict, FiniteFloat, StrictFloat, StrictInt, StrictStr, ValidationError

from .data import DEFAULT_TASK, TOKEN_FIELDS, Estimate, GroupRecord, Rollout, RolloutGroup
from .errors import DataFileError


class _RolloutLine(BaseModel):
    model_config = ConfigDict(extra="ignore")

    text: StrictStr
    answer: StrictStr | None = None
    stats: dict[str, FiniteFloat | None] | None = None
    token_entropy: list[FiniteFloat] | None = None
    token_self_certainty: list[FiniteFloat] | None = None
    token_logprob: list[FiniteFloat] | None = None
    token_confidence: list[FiniteFloat] | None = None


class _GroupLine(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: StrictStr
    prompt: StrictStr
    rollouts: list[_RolloutLine]
    task: StrictStr | None = None
    reference: StrictStr | StrictInt | Annotated[StrictFloat, AllowInfNan(False)] | None = None
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
    #: Groups with ``"rollouts": []``: well-formed, but left out (nothing to estimate or score).
    empty: list[LineError] = field(default_factory=list)

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
        gid = obj.get("id")
        named = f"group {gid!r}: " if isinstance(gid, str) and len(gid) <= 200 else ""
        raise ValueError(named + _describe_validation_error(exc)) from None
    except (OverflowError, RecursionError) as exc:  # numbers or nesting beyond what validation converts
        raise ValueError(f"cannot be read: {type(exc).__name__}: {exc}") from None
    group = RolloutGroup(
        id=line.id,
        prompt=line.prompt,
        rollouts=[_to_rollout(r) for r in line.rollouts],
        task=line.task or DEFAULT_TASK,
        meta=dict(line.meta or {}),
    )
    return GroupRecord(group=group, reference=_reference_text(line.reference), source=source)


_BOM = b"\xef\xbb\xbf"
#: A JSON escape of a UTF-16 surrogate: the only way a JSON line can hold a string that UTF-8 cannot encode.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def lone_surrogate(value: Any, where: str = "") -> str | None:
    """Where in ``value`` a string holds a lone surrogate (pairs were joined by the JSON decoder)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return where or "line"
        return None
    if isinstance(value, dict):
        for k, v in value.items():
            found = lone_surrogate(k, f"{where}.{k!r}".lstrip(".")) or lone_surrogate(v, f"{where}.{k}".lstrip("."))
            if found:
                return found
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found = lone_surrogate(v, f"{where}[{i}]")
            if found:
                return found
    return None


def decode_line(raw: bytes, lineno: int = 2) -> Any:
    """One line's bytes as a JSON value; ``ValueError`` saying what is wrong (the malformed-line class).

    A UTF-8 byte-order mark at the start of line 1 is dropped, as editors on Windows write one.
    """
    if lineno == 1 and raw.startswith(_BOM):
        raw = raw[len(_BOM):]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not valid UTF-8 (byte {exc.start})") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON: {exc.msg} at column {exc.colno}") from None
    except RecursionError:
        raise ValueError("not readable JSON: nested too deeply") from None
    except ValueError as exc:  # an integer longer than Python converts (sys.get_int_max_str_digits())
        reason = "a number has too many digits to convert" if "digits" in str(exc) else str(exc)
        raise ValueError(f"not readable JSON: {reason}") from None
    if _SURROGATE_ESCAPE.search(raw):
        where = lone_surrogate(obj)
        if where:
            raise ValueError(f"{where}: a string holds a lone UTF-16 surrogate (\\ud800-\\udfff), which is not text")
    return obj


def parse_raw_line(raw: bytes, lineno: int, source: str) -> GroupRecord:
    """A rollout-file line's bytes as a record (``ValueError`` when malformed). One parse for every reader."""
    return parse_group_line(decode_line(raw, lineno), source=source)


def iter_rollout_file(path: str | Path) -> Iterator[GroupRecord | LineError]:
    """Yield a :class:`GroupRecord` per good line and a :class:`LineError` per bad one, in order."""
    path = Path(path)
    name = str(path)
    handle = open_data_file(path, "Rollout file")
    seen: dict[str, int] = {}
    with handle:
        for lineno, raw in enumerate(handle, start=1):
            if not raw.strip() or (lineno == 1 and not raw.removeprefix(_BOM).strip()):
                continue
            try:
                record = parse_raw_line(raw, lineno, f"{name}:{lineno}")
            except ValueError as exc:
                yield LineError(name, lineno, str(exc))
                continue
            gid = record.group.id
            if gid in seen:
                yield LineError(name, lineno, f"duplicate id {gid!r} (first on line {seen[gid]})")
                continue
            seen[gid] = lineno
            yield record


def open_data_file(path: Path, what: str) -> IO[bytes]:
    """``path`` opened for reading, or a :class:`DataFileError` naming it and what to check."""
    try:
        return path.open("rb")
    except FileNotFoundError:
        raise DataFileError(f"{what} {path} does not exist. Check the path given to --data.") from None
    except IsADirectoryError:
        raise DataFileError(f"{what} {path} is a folder; pass a .jsonl file to --data.") from None
    except OSError as exc:
        raise DataFileError(f"Cannot open {what.lower()} {path}: {exc.strerror}.") from None


def read_rollout_file(path: str | Path, *, strict: bool = False) -> ReadResult:
    """Read a whole rollout file. With ``strict``, the first malformed line raises :class:`DataFileError`.

    A file that yields no group to work on raises :class:`DataFileError` saying what the file looks
    like and what to do (see :func:`describe_unusable_file`).
    """
    result = ReadResult()
    for item in iter_rollout_file(path):
        if isinstance(item, LineError):
            if strict:
                raise DataFileError(
                    f"{item}. The file was read in strict mode; fix the line or drop --strict "
                    "to skip malformed lines with a warning."
                )
            result.errors.append(item)
        elif not item.group.rollouts:
            line = int((item.source or ":0").rpartition(":")[2])
            result.empty.append(LineError(str(path), line, f"group {item.group.id!r} has no rollouts"))
        else:
            result.records.append(item)
    if not result.records:
        raise DataFileError(describe_unusable_file(Path(path), result))
    return result


#: Keys that mark a line as a prompt (input of `ttrl rollouts generate`), not a rollout group.
_PROMPT_KEYS = ({"prompt"}, {"question"}, {"problem"})


def describe_unusable_file(path: Path, result: ReadResult) -> str:
    """Why a rollout file gave no group: what it looks like, and what to run instead."""
    generate = f"ttrl rollouts generate --data {path} -n 8 --output rollouts.jsonl"
    with path.open("rb") as handle:
        head = handle.read(1 << 16).removeprefix(_BOM)
    text = head.lstrip()
    if not text:
        return f"Rollout file {path} is empty. A rollout file has one JSON object per line (docs/formats.md); make one with `{generate}`."
    if text.startswith(b"["):
        return (
            f"Rollout file {path} is a JSON array, not JSON Lines (one group object per line; docs/formats.md). "
            f"Convert it with: python -c \"import json,sys; [print(json.dumps(g)) for g in json.load(open(sys.argv[1]))]\" "
            f"{path} > {path.stem}-lines.jsonl   (or: jq -c '.[]' {path} > {path.stem}-lines.jsonl)"
        )
    first = _first_object(head)
    if first is not None and "rollouts" not in first and any(keys <= set(first) for keys in _PROMPT_KEYS):
        return (
            f"{path} looks like a prompt file (its lines have {', '.join(sorted(first)[:6])}; no \"rollouts\"). "
            f"ttrl estimate and ttrl bench need rollouts: generate them first with `{generate}`."
        )
    if result.empty and not result.errors:
        return f"Every group in {path} has no rollouts (\"rollouts\": []); there is nothing to estimate. First: {result.empty[0]}."
    shown = "; ".join(str(e) for e in result.errors[:3])
    return (
        f"No line of {path} is a rollout group ({len(result.errors)} malformed line(s); {shown}). "
        "Each line must be a JSON object with id, prompt and rollouts (docs/formats.md)."
    )


def _first_object(head: bytes) -> dict | None:
    for raw in head.split(b"\n")[:20]:
        try:
            obj = json.loads(raw)
        except (ValueError, RecursionError):
            continue
        if isinstance(obj, dict):
            return obj
    return None


def _finite_or_none(values: np.ndarray | None) -> list[float] | None:
    if values is None:
        return None
    return [float(v) for v in values]


def record_to_json(record: GroupRecord) -> dict[str, Any]:
    """The rollout-file JSON object for a group record (inverse of :func:`parse_group_line`)."""
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
    return json.dumps(_clean_json(obj), ensure_ascii=False, allow_nan=False, default=_json_default)


def dumps_line(obj: Any) -> str:
    """One JSON Lines line (strict JSON, UTF-8-encodable), or ``ValueError`` when ``obj`` cannot be one.

    Built before anything is written, so an unwritable value fails its own line, not the file.
    """
    try:
        line = _dumps(obj) + "\n"
        line.encode("utf-8")
    except (TypeError, ValueError, RecursionError) as exc:
        raise ValueError(f"cannot be written as JSON: {type(exc).__name__}: {exc}") from None
    return line


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "w") -> Iterator[IO[Any]]:
    """Write ``path`` through a temporary file beside it, renamed into place only when the block ends
    without an error: an interrupt or a crash leaves the previous file (or none), never half a file."""
    path = Path(path)
    encoding = {} if "b" in mode else {"encoding": "utf-8"}
    if path.exists() and not path.is_file():  # /dev/null or a pipe: there is no file to replace
        with path.open(mode, **encoding) as handle:
            yield handle
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open(mode, **encoding) as handle:
            yield handle
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json_file(path: str | Path, obj: Any) -> None:
    """A whole JSON document (results, reports), atomically."""
    text = json.dumps(_clean_json(obj), indent=2, ensure_ascii=False, allow_nan=False, default=_json_default) + "\n"
    with atomic_write(path) as handle:
        handle.write(text)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def write_rollout_file(path: str | Path, records: Iterable[GroupRecord], *, append: bool = False) -> int:
    """Write (atomically) or append group records as JSON Lines. Returns the number of lines written."""
    lines = [dumps_line(record_to_json(record)) for record in records]
    if append:
        with Path(path).open("a", encoding="utf-8") as handle:
            handle.writelines(lines)
    else:
        with atomic_write(path) as handle:
            handle.writelines(lines)
    return len(lines)


def estimate_to_json(group_id: str, estimator: str, estimate: Estimate) -> dict[str, Any]:
    """One line of an estimate file (docs/formats.md)."""
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
    handle.write(dumps_line(obj))


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

"""ttrl's environment variables, each with its type, read and checked in one place.

``ttrl`` checks every ``TTRL_*`` variable before it imports a command (:func:`check_environment`): a
bad value is a user error that names the variable, the value and what it accepts, even for
``ttrl --help``; an unknown ``TTRL_*`` name gets a "did you mean" warning. Code that reads a variable
calls :func:`env_flag`, :func:`env_int`, ... so the check and the use cannot disagree.
"""

from __future__ import annotations

import difflib
import math
import os
from dataclasses import dataclass

from .errors import UserError

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


@dataclass(frozen=True)
class EnvVar:
    name: str
    kind: str  # "flag", "int", "float", "list", "path", "internal"
    description: str
    minimum: float | None = None


VARIABLES = {
    v.name: v
    for v in (
        EnvVar("TTRL_DEBUG", "flag", "show the traceback of user errors"),
        EnvVar("TTRL_STRICT_PLUGINS", "flag", "make any plugin problem an error"),
        EnvVar("TTRL_LOAD_PLUGINS", "list", "load only these third-party plugins (entry-point or distribution names)"),
        EnvVar("TTRL_ANSWER_WORKERS", "int", "answer-checker worker processes per process", minimum=0),
        EnvVar("TTRL_ANSWER_WORKER_MEMORY_MB", "int", "memory limit of one answer-checker worker, MiB", minimum=1),
        EnvVar("TTRL_ANSWER_WORKER_STARTUP", "float", "seconds a fresh answer-checker worker may take to start", minimum=0),
        EnvVar("TTRL_ANSWER_WORKER_RETRY", "float", "seconds before a pool that gave up starting workers tries again", minimum=0),
        EnvVar("TTRL_CACHE_DIR", "path", "where converted models are cached (default ~/.cache/ttrl)"),
        EnvVar("TTRL_MODEL_CACHE", "flag", "cache converted GGUF models (0 turns it off)"),
        EnvVar("TTRL_OPENRLHF_SPEC", "internal", "set by `ttrl train` for OpenRLHF's processes"),
    )
}

_EXPECTED = {
    "flag": "1 or 0 (also true/false, yes/no, on/off)",
    "int": "a whole number",
    "float": "a number",
    "list": "comma-separated names",
    "path": "a path",
    "internal": "",
}


def _fail(var: EnvVar, raw: str, accepted: str) -> UserError:
    return UserError(
        f"Environment variable {var.name}={raw!r} is not valid: it takes {accepted} ({var.description}). "
        f"Fix it or unset it (unset {var.name})."
    )


def _parse(var: EnvVar, raw: str):
    text = raw.strip()
    if var.kind == "flag":
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise _fail(var, raw, _EXPECTED["flag"])
    if var.kind in {"int", "float"}:
        try:
            value = int(text) if var.kind == "int" else float(text)
        except ValueError:
            raise _fail(var, raw, _EXPECTED[var.kind]) from None
        if (var.kind == "float" and not math.isfinite(value)) or (var.minimum is not None and value < var.minimum):
            bound = f" >= {var.minimum:g}" if var.minimum is not None else ""
            raise _fail(var, raw, f"{_EXPECTED[var.kind]}{bound}")
        return value
    if var.kind == "list":
        return [part.strip() for part in text.split(",") if part.strip()]
    return raw


def _read(name: str, default):
    raw = os.environ.get(name)
    if raw is None or (not raw.strip() and VARIABLES[name].kind in {"int", "float"}):
        return default
    return _parse(VARIABLES[name], raw)


def env_flag(name: str, default: bool = False) -> bool:
    return _read(name, default)


def env_int(name: str, default: int | None = None) -> int | None:
    return _read(name, default)


def env_float(name: str, default: float | None = None) -> float | None:
    return _read(name, default)


def env_list(name: str) -> list[str] | None:
    """The names in a comma-separated variable; None when it is unset (an empty value is an empty list)."""
    return _read(name, None)


def check_environment() -> list[str]:
    """Raise :class:`UserError` for the first bad ``TTRL_*`` value; return warnings for unknown names."""
    warnings = []
    for name, raw in sorted(os.environ.items()):
        if not name.startswith("TTRL_"):
            continue
        var = VARIABLES.get(name)
        if var is None:
            close = difflib.get_close_matches(name, VARIABLES, n=1, cutoff=0.7)
            hint = f" Did you mean {close[0]}?" if close else f" Known: {', '.join(VARIABLES)}."
            warnings.append(f"environment variable {name} is not one ttrl reads.{hint}")
            continue
        _read(name, None)
    return warnings

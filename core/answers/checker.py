"""The semantic checker: math-verify, run only inside a sandbox worker process.

``python -m ttrl.core.answers.checker`` serves requests on stdin/stdout (one JSON document per
length-prefixed frame, never pickle). It runs in its own process so that a parse that never ends, a
crash or a memory bomb costs a worker, not the caller. Inside the worker the main thread owns the
signals, so a per-request ``setitimer`` deadline works (math-verify's own ``signal.alarm`` timeouts
are switched off: they fail in non-main threads and take whole seconds only). A CPU and an address
space limit make a worker that ignores the alarm (stuck in C code) die on its own, even when its
parent is gone.

Equations are decided here, not by math-verify (whose ``verify(gold, pred)`` unwraps an equation
against a value, so OR-ing both directions would make ``a+3z=0`` equal ``0``): two equations are the
same when they define the same relation (``lhs - rhs`` of one a non-zero constant multiple of the
other's at random points: ``2x+4y-3=0`` is ``y=-\frac12x+\frac34``); an equation equals a value only
when it assigns that value to a variable (``x=5`` and ``5``). For everything else math-verify is made
symmetric (``verify(a, b)`` or ``verify(b, a)``) and its known false equivalences are vetoed first:
it rounds numbers to 6 significant digits, so ``1/2^{99}`` and ``1/2^{98}`` (or ``1/2004!`` and
``1/2006!``) compare equal; numbers are compared at 40 digits and expressions with variables at
random points. A written decimal and an exact constant follow the ``decimals`` convention of the
request (see :class:`~ttrl.core.answers.normalize.Conventions`). Matrix sums and products are
evaluated at parse time, so they compare with their value.
"""

from __future__ import annotations

import functools
import json
import math
import os
import random
import re
import resource
import signal
import struct
import sys
import time
import zlib
from typing import Any

_HEADER = struct.Struct(">I")
_MEMORY_MB = int(os.environ.get("TTRL_ANSWER_WORKER_MEMORY_MB", "3072"))
_PARSE_CACHE_SIZE = 4096
_RELATIVE_TOLERANCE = 1e-12
_PROBES = 3
_WRITTEN_DECIMAL = re.compile(r"^-?(\d*)\.(\d+)$")


class Deadline(BaseException):
    """Raised by the interval timer; a BaseException so that math-verify's ``except Exception`` lets it through."""


def _on_alarm(signum, frame):
    raise Deadline()


def _guarded(function, *args) -> dict[str, Any]:
    """``function(*args)``, or the error it raised as ``{"error": ...}`` (a parser bug on one answer
    must not end a batch or the worker); :class:`Deadline` passes through."""
    try:
        return function(*args)
    except MemoryError:
        return {"error": "out of memory"}
    except RecursionError:
        return {"error": "too deeply nested"}
    except Exception as exc:
        return {"error": type(exc).__name__}


class Checker:
    """math-verify with a parse cache and the false-equivalence vetoes."""

    def __init__(self) -> None:
        from math_verify import parse, verify  # imported here: the caller's process never needs sympy

        self._parse = parse
        self._verify = verify
        self._cache: dict[str, list] = {}

    def parse(self, answer: str) -> list:
        """math-verify's parse of ``answer`` (cached), with the numeric value of a constant computed
        now, so that an expression too big to evaluate fails here and is blamed on this answer."""
        cached = self._cache.get(answer)
        if cached is not None:
            return cached
        text = f"${answer}$" if "$" not in answer else f"\\boxed{{{answer}}}"
        parsed = self._parse(text, parsing_timeout=None)
        if parsed:
            parsed = [_evaluate_matrix_expression(parsed[0]), *parsed[1:]]
            _evaluate_constants(parsed[0])
        if len(self._cache) >= _PARSE_CACHE_SIZE:
            self._cache.clear()
            _cached_numeric_value.cache_clear()
        self._cache[answer] = parsed
        return parsed

    def equivalent(self, a: str, b: str, conventions: dict[str, Any] | None = None) -> dict[str, Any]:
        conventions = conventions or {}
        if conventions.get("percent", "value") == "value":
            a, b = _without_percent(a), _without_percent(b)
        parsed_a, parsed_b = self.parse(a), self.parse(b)
        if not parsed_a or not parsed_b:
            return {"equivalent": False, "verify_calls": 0, "unparsed": True}
        x, y = parsed_a[0], parsed_b[0]
        relation = _relation_verdict(x, y, self._value_equal, conventions, a, b)
        if relation is not None:
            same, reason = relation
            return {"equivalent": same, "verify_calls": 0, "decided_by": reason, **({} if same else {"veto": reason})}
        return self._value_equal(x, y, conventions, a, b, parsed_a, parsed_b)

    def parse_reply(self, answer: str, conventions: dict[str, Any] | None = None) -> dict[str, Any]:
        """Whether ``answer`` parses, and its :func:`fingerprint` (``None`` when it has none)."""
        if (conventions or {}).get("percent", "value") == "value":
            answer = _without_percent(answer)
        parsed = self.parse(answer)
        return {"parsed": bool(parsed), "fingerprint": fingerprint(parsed[0]) if parsed else None}

    def parse_many(self, answers: list[str], conventions: dict[str, Any] | None = None) -> dict[str, Any]:
        """:meth:`parse_reply` for several answers in one request; at the deadline the results so far."""
        results: list[dict[str, Any]] = []
        for answer in answers:
            try:
                results.append(_guarded(self.parse_reply, answer, conventions))
            except Deadline:
                return {"results": results, "stopped": "timeout"}
        return {"results": results}

    def first_equal(self, a: str, candidates: list[str], conventions: dict[str, Any] | None = None) -> dict[str, Any]:
        """``a`` against each candidate in order, up to the first equal one: one request for a whole
        class walk. A comparison that raises is recorded and the walk goes on; at the deadline the
        results so far come back (``stopped``)."""
        results: list[dict[str, Any]] = []
        for candidate in candidates:
            try:
                result = _guarded(self.equivalent, a, candidate, conventions)
            except Deadline:
                return {"results": results, "stopped": "timeout"}
            results.append(result)
            if result.get("equivalent"):
                break
        return {"results": results}

    def _value_equal(self, x: Any, y: Any, conventions: dict[str, Any], a: str = "", b: str = "",
                     parsed_a: list | None = None, parsed_b: list | None = None) -> dict[str, Any]:
        rounded = _rounded_decimal_verdict(x, y, a, b, conventions)
        if rounded is not None:
            return {"equivalent": rounded, "verify_calls": 0, "decided_by": "decimal rounding",
                    **({} if rounded else {"veto": "rounded decimal differs"})}
        # The veto is numeric evaluation, far cheaper than verify's simplification, so it runs
        # first: most different answers are rejected without calling verify at all.
        veto = false_equivalence(x, y)
        if veto:
            return {"equivalent": False, "verify_calls": 0, "veto": veto}
        parsed_a = parsed_a if parsed_a is not None else [x, a]
        parsed_b = parsed_b if parsed_b is not None else [y, b]
        calls = 1
        same = self._verify(parsed_a, parsed_b, timeout_seconds=None)
        if not same:
            calls += 1
            same = self._verify(parsed_b, parsed_a, timeout_seconds=None)
        return {"equivalent": bool(same), "verify_calls": calls, "decided_by": "math-verify"}


def _point_value(name: str, seed: int) -> Any:
    import sympy

    digest = zlib.crc32(f"{seed}:{name}".encode())
    return sympy.Rational(3 + digest % 89, 2 + (digest // 89) % 29)


def fingerprint(expr: Any) -> list[list[float]] | None:
    """The values of an expression at two fixed rational points per variable name (a constant: its
    value), or ``None`` for anything else (equations, containers, written decimals, unknown
    functions). Two answers whose fingerprints differ are different, as the random-point veto would
    find: computed once per answer, it spares a group the pairwise checks of its distinct answers."""
    import sympy
    from sympy.core.function import AppliedUndef

    if not isinstance(expr, sympy.Expr) or expr.has(sympy.Float) or expr.atoms(AppliedUndef):
        return None
    symbols = sorted(expr.free_symbols, key=str)
    if len(symbols) > 8:
        return None
    values = []
    for seed in (1, 2):
        try:
            value = sympy.N(expr.subs({s: _point_value(str(s), seed) for s in symbols}), 30)
            if not value.is_number or value.has(sympy.zoo, sympy.nan, sympy.oo, -sympy.oo):
                return None
            real, imaginary = value.as_real_imag()
            values.append([float(real), float(imaginary)])
        except (TypeError, ValueError, ArithmeticError, OverflowError):
            return None
        if not symbols:
            break
    if any(math.isinf(x) or math.isnan(x) for point in values for x in point):
        return None
    return values


def _without_percent(answer: str) -> str:
    """``25\\%`` read as ``25`` (the default percent convention)."""
    stripped = answer.rstrip()
    for mark in ("\\%", "%"):
        if stripped.endswith(mark):
            return stripped[: -len(mark)].rstrip()
    return answer


def _is_assignment(relation: Any) -> bool:
    """``x = …`` or ``f(x) = …``: the left side names what the right side is."""
    import sympy

    lhs = relation.lhs
    return isinstance(lhs, sympy.Symbol) or (isinstance(lhs, sympy.core.function.AppliedUndef) and all(
        isinstance(arg, sympy.Symbol) for arg in lhs.args))


def _relation_verdict(x: Any, y: Any, value_equal, conventions, a: str, b: str) -> tuple[bool, str] | None:
    """Equations decided here: ``(same, reason)``, or ``None`` when neither side is an equation."""
    import sympy

    x_eq, y_eq = isinstance(x, sympy.Equality), isinstance(y, sympy.Equality)
    if not (x_eq or y_eq):
        return None
    if x_eq and y_eq:
        if _is_assignment(x) and _is_assignment(y) and not (x.rhs.free_symbols - {x.lhs}) and not (y.rhs.free_symbols - {y.lhs}):
            if x.lhs != y.lhs:
                return False, "assigns another variable"
            same = value_equal(x.rhs, y.rhs, conventions)["equivalent"]
            return bool(same), "assigned values" if same else "assigned values differ"
        verdict = _same_relation(x, y)
        if verdict is None:
            return False, "equations could not be compared"
        return (True, "same relation") if verdict else (False, "equations differ")
    equation, value = (x, y) if x_eq else (y, x)
    if not _is_assignment(equation):
        return False, "an equation is not a value"
    same = value_equal(equation.rhs, value, conventions)["equivalent"]
    return bool(same), "assigned value" if same else "assigned value differs"


def _same_relation(a: Any, b: Any) -> bool | None:
    """Whether two equations define the same relation: ``lhs - rhs`` of one a non-zero constant
    multiple of the other's, at random rational points (``None``: could not evaluate)."""
    import sympy

    left, right = a.lhs - a.rhs, b.lhs - b.rhs
    symbols = sorted(left.free_symbols | right.free_symbols, key=str)
    if len(symbols) > 8:
        return None
    if not symbols:
        x, y = numeric_value(left), numeric_value(right)
        if x is None or y is None:
            return None
        return (x == 0) == (y == 0)
    if left.free_symbols != right.free_symbols:
        return False
    rng = random.Random(0)
    ratios = []
    for _ in range(_PROBES + 2):
        point = {s: sympy.Rational(rng.randint(2, 97), rng.randint(2, 31)) for s in symbols}
        try:
            x, y = sympy.N(left.subs(point), 40), sympy.N(right.subs(point), 40)
        except (TypeError, ValueError, ArithmeticError):
            return None
        if not (x.is_number and y.is_number) or x.has(sympy.zoo, sympy.nan) or y.has(sympy.zoo, sympy.nan):
            return None
        if y == 0 or x == 0:
            if abs(x) > 1e-30 or abs(y) > 1e-30:
                return False
            continue
        ratios.append(x / y)
    if not ratios:
        return None
    return all(abs(r - ratios[0]) <= 1e-9 * abs(ratios[0]) for r in ratios[1:])


def _rounded_decimal_verdict(x: Any, y: Any, a: str, b: str, conventions: dict[str, Any]) -> bool | None:
    """A written decimal against an exact constant, under the ``decimals`` convention, else ``None``."""
    from fractions import Fraction

    import sympy

    match_a, match_b = _WRITTEN_DECIMAL.match(a.strip()), _WRITTEN_DECIMAL.match(b.strip())
    if bool(match_a) == bool(match_b):
        return None
    decimal_text, match, other = (a, match_a, y) if match_a else (b, match_b, x)
    if not isinstance(other, sympy.Expr) or other.free_symbols:
        return None
    value = numeric_value(other)
    if value is None or not value.is_real:
        return None
    written = Fraction(decimal_text.strip())
    places = len(match.group(2))
    if conventions.get("decimals", "rounded") != "rounded":
        return None  # exact: the numeric veto compares at 40 digits
    digits = str(abs(written.numerator * 10**places // written.denominator)).lstrip("0")
    if len(digits) < int(conventions.get("min_significant", 4)):
        return None
    exact = Fraction(str(sympy.N(value, 40)))
    scaled = exact * 10**places
    half = Fraction(1, 2) if exact >= 0 else Fraction(-1, 2)
    candidates = {Fraction(int(scaled), 10**places), Fraction(int(scaled + half), 10**places)}
    return written in candidates


def _evaluate_matrix_expression(parsed: Any) -> Any:
    """A sum, product or power of explicit matrices, evaluated (sympy's numeric evaluation of the
    unevaluated expression recurses without end); anything else unchanged."""
    from sympy.matrices import MatrixBase
    from sympy.matrices.expressions import MatrixExpr

    if isinstance(parsed, MatrixExpr) and not isinstance(parsed, MatrixBase):
        value = parsed.doit()
        if isinstance(value, MatrixBase):
            return value
    return parsed


def numeric_value(expr: Any) -> Any:
    """40-digit value of a constant expression, else ``None``."""
    import sympy

    if not isinstance(expr, sympy.Expr) or expr.free_symbols:
        return None
    return _cached_numeric_value(expr)


@functools.lru_cache(maxsize=_PARSE_CACHE_SIZE)
def _cached_numeric_value(expr: Any) -> Any:
    import sympy

    value = sympy.N(expr, 40)
    return value if value.is_number else None


def _evaluate_constants(parsed: Any) -> None:
    """Evaluate every constant in ``parsed`` (inside tuples, sets, intervals and matrices too)."""
    import sympy
    from sympy.matrices import MatrixBase

    from sympy.matrices.expressions import MatrixExpr

    if isinstance(parsed, MatrixBase):
        items = list(parsed)
    elif isinstance(parsed, MatrixExpr):
        return  # unevaluated (a symbolic matrix): nothing to evaluate
    elif isinstance(parsed, sympy.Interval):
        items = [parsed.start, parsed.end]
    elif isinstance(parsed, (sympy.Tuple, sympy.FiniteSet)):
        items = list(parsed.args)
    else:
        numeric_value(parsed)
        return
    for item in items[:100]:
        _evaluate_constants(item)


def _relative_difference(x: Any, y: Any) -> float:
    import sympy

    if not (x.is_number and y.is_number):
        return 0.0
    scale = max(abs(x), abs(y))
    if scale == 0:
        return 0.0
    return float(sympy.N(abs(x - y) / scale, 20))


def false_equivalence(a: Any, b: Any) -> str | None:
    """Why ``a`` and ``b`` differ although math-verify might call them equal, or ``None``.

    Constants are compared at 40 digits, expressions with variables at random points, equations by
    proportionality; tuples, intervals and matrices element by element, finite sets as sets of
    constants. Anything else is left to math-verify.
    """
    import sympy

    container = _container_difference(a, b)
    if container is not _NOT_CONTAINERS:
        return container
    if isinstance(a, sympy.Equality) and isinstance(b, sympy.Equality):
        return _equations_differ(a, b)
    if not (isinstance(a, sympy.Expr) and isinstance(b, sympy.Expr)):
        return None
    symbols = sorted(a.free_symbols | b.free_symbols, key=str)
    if not symbols:
        x, y = numeric_value(a), numeric_value(b)
        if x is None or y is None:
            return None
        return "numeric" if _relative_difference(x, y) > _RELATIVE_TOLERANCE else None
    if len(symbols) > 8:
        return None
    rng = random.Random(0)
    for _ in range(_PROBES):
        point = {s: sympy.Rational(rng.randint(2, 97), rng.randint(2, 31)) for s in symbols}
        try:
            difference = _relative_difference(sympy.N(a.subs(point), 40), sympy.N(b.subs(point), 40))
        except (TypeError, ValueError, ZeroDivisionError, ArithmeticError):
            continue
        if difference > 1e-9:
            return "differs at a random point"
    return None


_NOT_CONTAINERS = object()


def _container_difference(a: Any, b: Any) -> Any:
    """:func:`false_equivalence` for two containers of one kind, else ``_NOT_CONTAINERS``."""
    import sympy
    from sympy.matrices import MatrixBase

    if isinstance(a, sympy.Interval) and isinstance(b, sympy.Interval):
        if (a.left_open, a.right_open) != (b.left_open, b.right_open):
            return "interval ends differ"
        return _first_difference(zip((a.start, a.end), (b.start, b.end)))
    if isinstance(a, sympy.Tuple) and isinstance(b, sympy.Tuple) and len(a) == len(b):
        return _first_difference(zip(a.args, b.args))
    if isinstance(a, MatrixBase) and isinstance(b, MatrixBase) and a.shape == b.shape:
        return _first_difference(zip(list(a), list(b)))
    if isinstance(a, sympy.FiniteSet) and isinstance(b, sympy.FiniteSet):
        values_a = [numeric_value(x) for x in a.args]
        values_b = [numeric_value(y) for y in b.args]
        if None in values_a or None in values_b:
            return None
        def covered(xs, ys):
            return all(any(_relative_difference(x, y) <= _RELATIVE_TOLERANCE for y in ys) for x in xs)
        return None if covered(values_a, values_b) and covered(values_b, values_a) else "set elements differ"
    return _NOT_CONTAINERS


def _first_difference(pairs) -> str | None:
    for x, y in pairs:
        reason = false_equivalence(x, y)
        if reason:
            return reason
    return None


def _equations_differ(a: Any, b: Any) -> str | None:
    """:func:`false_equivalence` for two equations (inside tuples or sets): not the same relation."""
    return "equations differ" if _same_relation(a, b) is False else None


# -- the worker loop ----------------------------------------------------------------------------


def _read_frame(stream) -> Any:
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None
    (size,) = _HEADER.unpack(header)
    return json.loads(stream.read(size).decode("utf-8"))


def _write_frame(stream, message: Any) -> None:
    payload = json.dumps(message).encode("utf-8")
    stream.write(_HEADER.pack(len(payload)) + payload)
    stream.flush()


def _limit_resources(seconds: float) -> None:
    # CPU: what this worker has used so far plus a few times the request's limit. A worker stuck in
    # C code past that gets SIGXCPU and dies, even when its parent died first.
    used = resource.getrusage(resource.RUSAGE_SELF)
    spent = used.ru_utime + used.ru_stime
    soft = int(spent + 4 * seconds + 2)
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def _dispatch(checker: Checker, op: str, request: dict[str, Any]) -> dict[str, Any]:
    conventions = request.get("conventions")
    if op == "parse":
        return checker.parse_reply(request["a"], conventions)
    if op == "parse_many":
        return checker.parse_many(list(request["texts"]), conventions)
    if op == "first_equal":
        return checker.first_equal(request["a"], list(request["candidates"]), conventions)
    if op == "equivalent":
        return checker.equivalent(request["a"], request["b"], conventions)
    return {"error": f"unknown op {op!r}"}


def serve(requests, replies) -> None:
    """Answer requests until stdin closes (which is also how a worker notices its parent died)."""
    signal.signal(signal.SIGALRM, _on_alarm)
    checker = Checker()
    # The first parse and verify load the LaTeX grammar and much of sympy (about a second): do it
    # before saying ready, so that no request's time limit pays for it.
    checker.equivalent("\\frac{x^2}{2}+\\sqrt{2}", "(1,2)")
    checker.equivalent("x+1", "1+x")
    _write_frame(replies, {"ready": os.getpid()})
    while True:
        request = _read_frame(requests)
        if request is None:
            return
        op, seconds = request["op"], float(request["seconds"])
        _limit_resources(seconds)
        started = time.perf_counter()
        try:
            signal.setitimer(signal.ITIMER_REAL, seconds)
            try:
                result = _guarded(_dispatch, checker, op, request)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        except Deadline:
            result = {"timeout": True}
        result["seconds"] = time.perf_counter() - started
        _write_frame(replies, result)


def main() -> None:
    limit = _MEMORY_MB * 1024 * 1024
    try:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (ValueError, OSError):  # an already lower hard limit: keep it
        pass
    replies = os.fdopen(os.dup(1), "wb")
    # Anything math-verify or sympy print goes to stderr, never into the reply stream.
    os.dup2(2, 1)
    sys.setrecursionlimit(5000)
    serve(sys.stdin.buffer, replies)


if __name__ == "__main__":
    main()

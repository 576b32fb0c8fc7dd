"""Equivalence of answers and clustering into classes: fast paths first, the sandboxed checker last.

Clustering compares each new answer with the *representative* of each existing class and joins the
first class that matches; it never joins classes through chains. Equality with rounding is not
transitive (``0.3333 ≈ \\frac13 ≈ 0.33333``, the ends not; ``5\\text{ cm} ≈ 5 ≈ 5\\text{ km}``), so
union-find over all pairs could put two answers that are not equivalent into one class; comparing
with representatives guarantees every member is equivalent to its class's first member, and costs one
check per (distinct answer, class) rather than per pair. The fast paths merge by *keys* that are true
equivalence relations (equal normalised strings, equal exact rationals with equal units, equal sets of
rationals), so merging by key before comparing never breaks that guarantee.

Cost per group is bounded (:class:`Budget`): past a number of checker requests or a time budget, the
remaining undecided pairs are not sent to the checker: the group's classes are then those of the
normalised keys, and its diagnostics say so (``degraded``). Semantic results and parse failures are
cached per engine, so a repeated pair never costs a second round trip.
"""

from __future__ import annotations

import re
import threading
from collections import Counter, OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..data import AnswerClasses
from .normalize import (
    DEFAULT_CONVENTIONS,
    MAX_NORMALIZE_CHARS,
    MAX_PARSE_CHARS,
    Conventions,
    Key,
    answer_key,
    keys_decide,
    normalize,
)
from .sandbox import CheckerPool, WorkerFailed, get_pool

COMPARE_MODES = ("math", "number", "exact")
#: A group stops asking the checker after this many timeouts; the rest count as "not equivalent".
MAX_TIMEOUTS_PER_GROUP = 2
_CACHE_SIZE = 65536
#: For ``compare="exact"``: a pre-extracted `(b)` or `B` is the choice B.
_CHOICE_LETTER = re.compile(r"^\(?([A-Za-z])\)?$")
#: What may take seconds to evaluate (a power of a power, a factorial, a huge exponent): parsed one
#: by one, so that a timeout is pinned on that answer and does not cost a whole batch of parses.
_COSTLY = re.compile(r"\^\s*\{[^{}]*\^|\^\s*\{?\s*\d{3,}|!|\\binom|\\prod|\\sum")
#: Distinct answers from which a group's answers are parsed in batches before the class walk.
_PREPARE_FROM = 8
#: A request is not started with less than this left of the group's time budget.
_MIN_REQUEST_SECONDS = 0.05


@dataclass(frozen=True, slots=True)
class Budget:
    """The most semantic work one group may cost: ``requests`` to the checker (parses and
    comparisons) and ``seconds`` the checker spends on them (the wait for a free worker and a worker's
    start-up are not counted, so threads sharing the pool do not degrade each other). Past either, the group's remaining
    undecided pairs count as different (classes by normalised key) and ``degraded`` says so."""

    requests: int = 256
    seconds: float = 1.0

    def __post_init__(self) -> None:
        if self.requests < 0 or self.seconds < 0:
            raise ValueError(f"a budget cannot be negative: {self}")


DEFAULT_BUDGET = Budget()


@dataclass(frozen=True, slots=True)
class Atom:
    """One distinct answer after normalisation, with its fast-path key."""

    text: str
    normalized: str
    key: Key


def make_atom(answer: str, compare: str, conventions: Conventions = DEFAULT_CONVENTIONS) -> Atom:
    if len(answer) > MAX_NORMALIZE_CHARS:
        return Atom(answer, answer, Key("text", answer))
    normalized = normalize(answer)
    if compare == "exact":
        letter = _CHOICE_LETTER.match(normalized.text)
        return Atom(answer, normalized.text, Key("text", letter.group(1).upper() if letter else normalized.text))
    key = answer_key(normalized.text, wrapped=normalized.wrapped, unit=normalized.unit, conventions=conventions)
    return Atom(answer, normalized.text, key)


@dataclass(frozen=True, slots=True)
class Verdict:
    """Why two answers were judged equal or different.

    ``reason`` says what decided (``"same string"``, ``"same number"``, ``"units differ"``,
    ``"rounded decimal"``, ``"math-verify"``, ``"equations differ"``, ...). ``failed`` is set when the
    check could not be made (a timeout, a crashed worker, a checker that cannot start, the group's
    budget spent, an answer too long to parse): the answers then count as different, and ``reason``
    says which failure it was.
    """

    equivalent: bool
    reason: str
    normalized: tuple[str | None, str | None] = (None, None)
    checked: bool = False
    failed: bool = False

    def __bool__(self) -> bool:
        return self.equivalent


@dataclass
class CheckStats:
    """Counters for one clustering (or one pairwise check): what decided each comparison, what failed."""

    fast_path: int = 0
    cache_hits: int = 0
    semantic_checks: int = 0
    verify_calls: int = 0
    round_trips: int = 0
    timeouts: int = 0
    failures: int = 0
    vetoes: int = 0
    #: Pairs found different by their answers' fingerprints (values at fixed points), without a request.
    fingerprinted: int = 0
    skipped: int = 0
    veto_reasons: list[str] = field(default_factory=list)
    suspects: set[str] = field(default_factory=set)
    budget: Budget = DEFAULT_BUDGET
    #: Seconds the checker spent on this group's requests (waiting for a free worker or for a
    #: worker's start-up is not counted: contention between threads must not degrade a group).
    spent: float = 0.0
    degraded: str | None = None
    unavailable: str | None = None
    failure_reasons: list[str] = field(default_factory=list)

    def seconds_left(self) -> float:
        return self.budget.seconds - self.spent

    def to_dict(self) -> dict[str, Any]:
        hidden = ("veto_reasons", "suspects", "budget", "spent", "degraded", "unavailable", "failure_reasons")
        data = {k: v for k, v in self.__dict__.items() if k not in hidden}
        if self.veto_reasons:
            data["veto_reasons"] = sorted(set(self.veto_reasons))
        if self.failure_reasons:
            data["failure_reasons"] = sorted(set(self.failure_reasons))
        if self.degraded:
            data["degraded"] = self.degraded
        if self.unavailable:
            data["checker_unavailable"] = self.unavailable
        return data


class _BudgetSpent(Exception):
    pass


class SemanticChecker:
    """math-verify in sandbox workers, behind a result cache and a list of answers that cannot parse."""

    def __init__(self, timeout_seconds: float, pool: CheckerPool | None = None,
                 conventions: Conventions = DEFAULT_CONVENTIONS):
        self.timeout_seconds = timeout_seconds
        self.conventions = conventions
        self._pool = pool
        self._lock = threading.Lock()
        self._results: OrderedDict[tuple[str, str], tuple[bool, str]] = OrderedDict()
        self._parsed: OrderedDict[str, bool] = OrderedDict()
        self._fingerprints: OrderedDict[str, Any] = OrderedDict()
        self._strikes: dict[str, int] = {}

    @property
    def pool(self) -> CheckerPool:
        return self._pool or get_pool()

    def _remember(self, table: OrderedDict, key: Any, value: Any) -> None:
        with self._lock:
            table[key] = value
            table.move_to_end(key)
            if len(table) > _CACHE_SIZE:
                table.popitem(last=False)

    def _recall(self, table: OrderedDict, key: Any) -> Any:
        with self._lock:
            return table.get(key)

    def _parses(self, text: str, stats: CheckStats) -> bool:
        """Whether ``text`` parses within the limit (asked once per string, then cached).

        A timeout or a crash makes the string a suspect for the rest of this group; it is written
        off for good only at its second strike, since one timeout may have been load, not the string.
        """
        if text in stats.suspects:
            return False
        known = self._recall(self._parsed, text)
        if known is not None:
            return known
        reply, cut = self._call({"op": "parse", "a": text}, stats)
        parser_raised = reply is not None and reply.status == "failed" and not reply.result.get("crashed")
        if reply is not None and (reply.status == "ok" or parser_raised):
            # Parsed, or the parser raised (deterministic): the answer is settled for good.
            return self._settle_parse(text, reply.result if reply.status == "ok" else {"parsed": False})
        stats.suspects.add(text)
        if cut or reply is None and (stats.unavailable or stats.degraded):
            return False  # the budget or the pool, not the string: no strike
        with self._lock:
            strikes = self._strikes[text] = self._strikes.get(text, 0) + 1
            if len(self._strikes) > _CACHE_SIZE:
                self._strikes.clear()
        if strikes >= 2:
            self._remember(self._parsed, text, False)
        return False

    def _settle_parse(self, text: str, result: dict[str, Any]) -> bool:
        ok = bool(result.get("parsed"))
        if ok and result.get("fingerprint"):
            self._remember(self._fingerprints, text, result["fingerprint"])
        self._remember(self._parsed, text, ok)
        return ok

    def prepare(self, texts: Sequence[str], stats: CheckStats, chunk: int = 16) -> None:
        """Parse and fingerprint a group's distinct undecided answers, many per request, before the
        class walk (which then needs no parse request and no check for answers whose fingerprints
        differ). A chunk that fails or times out is left to the one-by-one parse, which pins a
        timeout on the answer that caused it."""
        todo = [t for t in dict.fromkeys(texts)
                if len(t) <= MAX_PARSE_CHARS and not _COSTLY.search(t) and self._recall(self._parsed, t) is None]
        for start in range(0, len(todo), chunk):
            part = todo[start : start + chunk]
            try:
                reply, _ = self._call({"op": "parse_many", "texts": part}, stats, count_timeout=False)
            except _BudgetSpent:
                return
            if reply is None or reply.status != "ok":
                return  # a crash or a kill: the one-by-one parse finds the culprit
            results = reply.result.get("results", [])
            for text, result in zip(part, results):
                if "error" not in result:
                    self._settle_parse(text, result)
            if reply.result.get("stopped"):
                return  # the item after the last result ran out of time: blamed one by one

    def _call(self, message: dict[str, Any], stats: CheckStats, *, count_timeout: bool = True):
        """One request within the group's budget: ``(reply or None, whether the budget cut its limit)``."""
        if stats.round_trips >= stats.budget.requests:
            stats.degraded = stats.degraded or (
                f"request budget ({stats.budget.requests} checker requests) spent: the rest compared by normalised text")
            raise _BudgetSpent()
        left = stats.seconds_left()
        if left < _MIN_REQUEST_SECONDS:
            stats.degraded = stats.degraded or (
                f"time budget ({stats.budget.seconds:g} s) spent after {stats.round_trips} checker requests: "
                "the rest compared by normalised text")
            raise _BudgetSpent()
        # One request may take at most half the group's budget, so that one hostile answer (a
        # timeout, a strike against it) leaves time for the honest ones.
        cap = min(self.timeout_seconds, stats.budget.seconds / 2)
        seconds = min(cap, left)
        stats.round_trips += 1
        try:
            reply = self.pool.call({**message, "conventions": _conventions_message(self.conventions)}, seconds)
        except WorkerFailed as exc:
            stats.failures += 1
            stats.failure_reasons.append(str(exc)[:200])
            unavailable = getattr(self.pool, "unavailable", None)
            if unavailable:
                stats.unavailable = unavailable
            return None, False
        stats.spent += reply.seconds
        cut = seconds < cap  # the budget's end, not the request's own limit, cut this one
        if reply.status == "timeout" and not count_timeout:
            pass  # a batch of parses: the one-by-one parse finds and blames the culprit
        elif reply.status == "timeout":
            if cut:
                stats.degraded = stats.degraded or (
                    f"time budget ({stats.budget.seconds:g} s) spent during a check: the rest compared by normalised text")
            else:
                stats.timeouts += 1
        elif reply.status == "failed":
            stats.failures += 1
            stats.failure_reasons.append(str(reply.result.get("error", "failed")))
        return reply, cut

    def compare(self, a: str, b: str, stats: CheckStats) -> tuple[bool, str, bool]:
        """Symmetric comparison in the checker: ``(equivalent, reason, failed)``; a failure is "different"."""
        pair = (a, b) if a <= b else (b, a)
        cached = self._recall(self._results, pair)
        if cached is not None:
            stats.cache_hits += 1
            return cached[0], cached[1], False
        if len(a) > MAX_PARSE_CHARS or len(b) > MAX_PARSE_CHARS:
            stats.skipped += 1
            return False, f"longer than {MAX_PARSE_CHARS} characters: compared as text", True
        if stats.timeouts >= MAX_TIMEOUTS_PER_GROUP:
            stats.skipped += 1
            stats.degraded = stats.degraded or (
                f"{MAX_TIMEOUTS_PER_GROUP} checker timeouts: the rest compared by normalised text")
            return False, stats.degraded, True
        if stats.degraded:
            stats.skipped += 1
            return False, stats.degraded, True
        try:
            # Parsing each side first pins a timeout on the answer that caused it; that answer is then
            # never sent again, so one hostile rollout costs one time limit, not one per class.
            for side in pair:
                if not self._parses(side, stats):
                    stats.skipped += 1
                    return False, self._why_unparsed(side, stats), True
            stats.semantic_checks += 1
            reply, _ = self._call({"op": "equivalent", "a": pair[0], "b": pair[1]}, stats)
        except _BudgetSpent:
            stats.skipped += 1
            return False, stats.degraded or "budget spent", True
        if reply is None:
            return False, stats.unavailable or "checker failed", True
        if reply.status != "ok":  # not cached: a timeout may be load, not the pair
            if reply.status == "timeout":
                return False, stats.degraded or f"timed out after {self.timeout_seconds:g} s", True
            return False, f"checker error: {reply.result.get('error', 'failed')}", True
        same = self._settle(pair[0], pair[1], reply.result, stats)
        return same, self._recall(self._results, pair)[1], False

    def first_match(self, a: str, candidates: Sequence[str], stats: CheckStats) -> tuple[int, list[int]]:
        """The index of the first candidate equivalent to ``a`` (``-1``: none, or not decidable within
        the limits), and the indices that were actually checked. Cached pairs cost nothing; the rest
        go to one worker in one request, which stops at the first equal candidate."""
        checked: list[int] = []
        pending: list[int] = []
        for i, candidate in enumerate(candidates):
            pair = (a, candidate) if a <= candidate else (candidate, a)
            cached = self._recall(self._results, pair)
            if cached is not None:
                stats.cache_hits += 1
                if cached[0]:
                    if not pending:
                        return i, checked
                    break  # an earlier uncached candidate may match first: ask about those
                continue
            pending.append(i)
        else:
            i = -1
        first_cached = i
        short = [k for k in pending if len(candidates[k]) <= MAX_PARSE_CHARS]
        if not short or not self._ready(a, stats):
            stats.skipped += len(pending)
            return first_cached, checked
        batch = [k for k in short if self._ready(candidates[k], stats)]
        stats.skipped += len(pending) - len(batch)
        mark = self._recall(self._fingerprints, a)
        if mark is not None:
            # Different values at the fixed points: different answers, no request.
            kept = []
            for k in batch:
                other = self._recall(self._fingerprints, candidates[k])
                if other is not None and _fingerprints_differ(mark, other):
                    stats.fingerprinted += 1
                    self._settle(a, candidates[k], {"equivalent": False, "veto": "differs at fixed points"}, stats, count=False)
                else:
                    kept.append(k)
            batch = kept
        if not batch:
            return first_cached, checked
        try:
            reply, _ = self._call({"op": "first_equal", "a": a, "candidates": [candidates[k] for k in batch]}, stats)
        except _BudgetSpent:
            stats.skipped += len(batch)
            return first_cached, checked
        if reply is None or reply.status != "ok":
            return first_cached, checked  # a timeout, a crash: counted by _call; nothing cached
        results = reply.result.get("results", [])
        stats.semantic_checks += len(results)
        if reply.result.get("stopped") == "timeout":
            stats.timeouts += 1
        for k, result in zip(batch, results):
            checked.append(k)
            if "error" in result:
                stats.failures += 1
                stats.failure_reasons.append(str(result["error"]))
                continue
            same = self._settle(a, candidates[k], result, stats)
            if same:
                return k, checked
        return first_cached, checked

    def _ready(self, text: str, stats: CheckStats) -> bool:
        """Whether ``text`` may go to the checker in this group: short enough, parsed, within budget."""
        if len(text) > MAX_PARSE_CHARS or stats.timeouts >= MAX_TIMEOUTS_PER_GROUP or stats.degraded:
            if stats.timeouts >= MAX_TIMEOUTS_PER_GROUP:
                stats.degraded = stats.degraded or (
                    f"{MAX_TIMEOUTS_PER_GROUP} checker timeouts: the rest compared by normalised text")
            return False
        try:
            return self._parses(text, stats)
        except _BudgetSpent:
            return False

    def _settle(self, a: str, b: str, result: dict[str, Any], stats: CheckStats, *, count: bool = True) -> bool:
        """Record one comparison's result (counters, cache) and return its verdict."""
        stats.verify_calls += int(result.get("verify_calls", 0))
        if result.get("veto") and count:
            stats.vetoes += 1
            stats.veto_reasons.append(str(result["veto"]))
        same = bool(result.get("equivalent"))
        reason = str(result.get("veto") or result.get("decided_by") or ("math-verify" if same else "different"))
        if result.get("unparsed"):
            reason = "math-verify could not read an answer"
        pair = (a, b) if a <= b else (b, a)
        self._remember(self._results, pair, (same, reason))
        return same

    def _why_unparsed(self, text: str, stats: CheckStats) -> str:
        if stats.degraded:
            return stats.degraded
        if stats.unavailable:
            return stats.unavailable
        if text in stats.suspects:
            return f"{text[:40]!r} timed out or crashed the checker"
        return f"math-verify cannot read {text[:40]!r}"


def _fingerprints_differ(a: list[list[float]], b: list[list[float]]) -> bool:
    if len(a) != len(b):
        return False  # a constant against an expression: let the checker decide
    for point_a, point_b in zip(a, b):
        for x, y in zip(point_a, point_b):
            if abs(x - y) > 1e-9 * max(abs(x), abs(y)) + 1e-12:
                return True
    return False


def _conventions_message(conventions: Conventions) -> dict[str, Any]:
    return {"percent": conventions.percent, "decimals": conventions.decimals,
            "min_significant": conventions.min_significant}


_KEY_REASONS = {"number": "same number", "set": "same set", "sequence": "same tuple or interval", "word": "same word",
                "text": "same normalised text"}


def compare_atoms(a: Atom, b: Atom, compare: str, checker: SemanticChecker, stats: CheckStats) -> Verdict:
    """The verdict on two atoms: keys first, then (``compare="math"``) the semantic checker."""
    normalized = (a.normalized, b.normalized)
    if not a.normalized or not b.normalized:
        return Verdict(False, "no answer", normalized)
    if a.text == b.text:
        return Verdict(True, "same string", normalized)
    if a.normalized == b.normalized and a.key == b.key:
        return Verdict(True, "same normalised text", normalized)
    decided = keys_decide(a.key, b.key, checker.conventions)
    if decided is not None or compare != "math":
        stats.fast_path += 1
        return Verdict(bool(decided), _key_reason(a.key, b.key, bool(decided)), normalized)
    same, reason, failed = checker.compare(a.normalized, b.normalized, stats)
    return Verdict(same, reason, normalized, checked=True, failed=failed)


def _key_reason(a: Key, b: Key, same: bool) -> str:
    if same:
        if a.kind == "number" and a.value != b.value:
            return "rounded decimal"
        return _KEY_REASONS.get(a.kind, "same key")
    if a.kind == "number" and b.kind == "number":
        return "units differ" if a.value == b.value else "numbers differ"
    if a.kind != b.kind:
        if a.kind == "text" or b.kind == "text":
            return "normalised texts differ"
        return f"a {a.kind} is not a {b.kind}"
    return f"{a.kind}s differ" if a.kind != "text" else "normalised texts differ"


def cluster(answers: Sequence[str | None], compare: str, checker: SemanticChecker,
            budget: Budget = DEFAULT_BUDGET) -> AnswerClasses:
    """Group answers into equivalence classes (ids in order of first appearance, ``-1`` = no answer).

    Each class's label (``representatives[k]``) is its cleanest member: the most frequent normalised
    spelling, the shortest among equally frequent ones. Each class's diagnostics count how its members
    joined: ``first``, ``exact_string`` (a string already seen), ``normalised`` (same normalised
    string), ``same_<kind>`` (same exact rational, set, sequence or word under another spelling),
    ``verify`` (the semantic checker); and the ``checks`` and ``timeouts`` of semantic checks made
    against its first member.
    """
    stats = CheckStats(budget=budget)
    # Each distinct string is normalised once, here.
    atoms = {answer: make_atom(answer, compare, checker.conventions) for answer in answers if answer is not None}
    if compare == "math":
        _prepare(list(atoms.values()), checker, stats)
    by_string: dict[str, int] = {}  # exact string -> class
    by_normalized: set[str] = set()
    by_key: dict[Key, int] = {}  # fast-path key -> class
    class_atoms: list[Atom] = []
    formed: list[Counter[str]] = []
    spellings: list[Counter[str]] = []
    class_ids: list[int] = []
    for answer in answers:
        if answer is None:
            class_ids.append(-1)
            continue
        k = by_string.get(answer)
        if k is not None:
            formed[k]["exact_string"] += 1
            spellings[k][_spelling(atoms[answer])] += 1
            class_ids.append(k)
            continue
        atom = atoms[answer]
        if not atom.normalized:  # "", "$ $", "\\,": an empty answer must not win a vote
            class_ids.append(-1)
            continue
        k = by_key.get(atom.key)
        if k is not None:
            formed[k]["normalised" if atom.normalized in by_normalized else f"same_{atom.key.kind}"] += 1
        else:
            k = _place(atom, class_atoms, formed, compare, checker, stats)
            if k == len(class_atoms):
                class_atoms.append(atom)
                spellings.append(Counter())
            by_key[atom.key] = k
        spellings[k][_spelling(atom)] += 1
        by_normalized.add(atom.normalized)
        by_string[answer] = k
        class_ids.append(k)
    labels = [_cleanest(counter) for counter in spellings]
    classes = AnswerClasses(list(answers), class_ids, labels)
    classes.diagnostics = {
        "method": f"{compare}: exact string, normalised key, then math-verify vs. class representatives"
        if compare == "math"
        else f"{compare}: exact string, then normalised key",
        "answers": len(answers),
        "no_answer": class_ids.count(-1),
        "distinct_strings": len(by_string),
        "distinct_keys": len(by_key),
        "classes": [
            {"size": size, "key": class_atoms[k].key.kind, **formed[k]}
            for k, size in enumerate(classes.sizes())
        ],
        **stats.to_dict(),
    }
    return classes


def _prepare(atoms: list[Atom], checker: SemanticChecker, stats: CheckStats) -> None:
    """Parse the group's distinct answers in batches when several of them may need the checker
    (at least one answer that keys cannot decide, and :data:`_PREPARE_FROM` distinct answers in all:
    fewer cost few round trips one by one, and a hostile one among them is blamed at once)."""
    texts = list(dict.fromkeys(atom.normalized for atom in atoms if atom.normalized))
    if len(texts) >= _PREPARE_FROM and any(atom.normalized and not atom.key.decided for atom in atoms):
        checker.prepare(texts, stats)


def _spelling(atom: Atom) -> str:
    """How a member would read as its class's label: the normalised text, with its unit if it had one
    (a label must mean what its members mean: `5\\text{ cm}`, not `5`)."""
    if not atom.key.unit:
        return atom.normalized
    unit, caret, power = atom.key.unit.partition("^")
    return f"{atom.normalized}\\text{{ {unit}}}{caret}{power}"


def _cleanest(spellings: Counter[str]) -> str:
    """The label of a class: its most frequent normalised spelling, then the shortest, then the first."""
    order = {text: i for i, text in enumerate(spellings)}
    return min(spellings, key=lambda text: (-spellings[text], len(text), order[text]))


def _place(atom: Atom, class_atoms: list[Atom], formed: list[Counter[str]], compare: str,
           checker: SemanticChecker, stats: CheckStats) -> int:
    """The class ``atom`` joins: the first whose representative it is equivalent to, else a new one.

    Keys decide most pairs here, inline (this walk is the group's quadratic part); the classes they
    cannot decide, up to the first a key says is equal, go to the checker in one request."""
    if stats.degraded and compare == "math" and not atom.key.decided:
        # Past the budget only keys decide, and a text key has no equal (by_key found none): a new
        # class, without walking every class (that walk would be the quadratic cost again).
        stats.skipped += len(class_atoms)
        formed.append(Counter(first=1))
        return len(class_atoms)
    conventions = checker.conventions
    undecided: list[int] = []
    by_key = -1
    for k, representative in enumerate(class_atoms):
        decided = keys_decide(atom.key, representative.key, conventions)
        if decided is None and compare == "math":
            undecided.append(k)
            continue
        stats.fast_path += 1
        if decided:
            by_key = k
            break
    if undecided:
        timeouts = stats.timeouts
        index, checked = checker.first_match(atom.normalized, [class_atoms[k].normalized for k in undecided], stats)
        for i in checked:
            formed[undecided[i]]["checks"] += 1
        if stats.timeouts > timeouts:
            formed[undecided[len(checked)] if len(checked) < len(undecided) else undecided[-1]]["timeouts"] += 1
        if index >= 0:
            formed[undecided[index]]["verify"] += 1
            return undecided[index]
    if by_key >= 0:
        formed[by_key]["same_key"] += 1
        return by_key
    formed.append(Counter(first=1))
    return len(class_atoms)

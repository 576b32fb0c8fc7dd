"""Equivalence of answers and clustering into classes: fast paths first, the sandboxed checker last.

Clustering compares each new answer with the *representative* of each existing class and joins the
first class that matches; it never joins classes through chains. math-verify's equality is not
transitive (it rounds: ``0.1234564 ≈ 0.1234565 ≈ 0.1234566`` pairwise, the ends not), so union-find
over all pairs could put two answers that are not equivalent into one class; comparing with
representatives guarantees every member is equivalent to its class's representative, and costs one
check per (distinct answer, class) rather than per pair. The fast paths merge by *keys* that are true
equivalence relations (equal normalised strings, equal exact rationals, equal sets of rationals),
so merging by key before comparing never breaks that guarantee.

Cost per group: each distinct string is normalised once; each distinct key needs a semantic check
only against classes whose keys cannot decide (:func:`~.normalize.keys_decide`). Semantic results
and parse failures are cached process-wide, so a repeated pair never costs a second round trip.
"""

from __future__ import annotations

import re
import threading
from collections import Counter, OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..data import AnswerClasses
from .normalize import MAX_NORMALIZE_CHARS, MAX_PARSE_CHARS, Key, answer_key, keys_decide, normalize_with_flag
from .sandbox import CheckerPool, WorkerFailed, get_pool

COMPARE_MODES = ("math", "number", "exact")
#: A group stops asking the checker after this many timeouts; the rest count as "not equivalent".
MAX_TIMEOUTS_PER_GROUP = 2
_CACHE_SIZE = 65536
#: For ``compare="exact"``: a pre-extracted `(b)` or `B` is the choice B.
_CHOICE_LETTER = re.compile(r"^\(?([A-Za-z])\)?$")


@dataclass(frozen=True, slots=True)
class Atom:
    """One distinct answer after normalisation, with its fast-path key."""

    text: str
    normalized: str
    key: Key


def make_atom(answer: str, compare: str) -> Atom:
    if len(answer) > MAX_NORMALIZE_CHARS:
        return Atom(answer, answer, Key("text", answer))
    normalized, wrapped = normalize_with_flag(answer)
    if compare == "exact":
        letter = _CHOICE_LETTER.match(normalized)
        return Atom(answer, normalized, Key("text", letter.group(1).upper() if letter else normalized))
    return Atom(answer, normalized, answer_key(normalized, wrapped=wrapped))


@dataclass
class CheckStats:
    """Counters for one clustering (or one pairwise check): what decided each comparison."""

    fast_path: int = 0
    cache_hits: int = 0
    semantic_checks: int = 0
    verify_calls: int = 0
    round_trips: int = 0
    timeouts: int = 0
    failures: int = 0
    vetoes: int = 0
    skipped: int = 0
    veto_reasons: list[str] = field(default_factory=list)
    suspects: set[str] = field(default_factory=set)

    def to_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k not in ("veto_reasons", "suspects")}
        if self.veto_reasons:
            data["veto_reasons"] = sorted(set(self.veto_reasons))
        return data


class SemanticChecker:
    """math-verify in sandbox workers, behind a result cache and a list of answers that cannot parse."""

    def __init__(self, timeout_seconds: float, pool: CheckerPool | None = None):
        self.timeout_seconds = timeout_seconds
        self._pool = pool
        self._lock = threading.Lock()
        self._results: OrderedDict[tuple[str, str], bool] = OrderedDict()
        self._parsed: OrderedDict[str, bool] = OrderedDict()
        self._strikes: dict[str, int] = {}

    @property
    def pool(self) -> CheckerPool:
        return self._pool or get_pool()

    def _remember(self, table: OrderedDict, key: Any, value: bool) -> None:
        with self._lock:
            table[key] = value
            table.move_to_end(key)
            if len(table) > _CACHE_SIZE:
                table.popitem(last=False)

    def _recall(self, table: OrderedDict, key: Any) -> bool | None:
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
        reply = self._call({"op": "parse", "a": text}, stats)
        parser_raised = reply is not None and reply.status == "failed" and not reply.result.get("crashed")
        if reply is not None and (reply.status == "ok" or parser_raised):
            # Parsed, or the parser raised (deterministic): the answer is settled for good.
            ok = reply.status == "ok" and bool(reply.result.get("parsed"))
            self._remember(self._parsed, text, ok)
            return ok
        stats.suspects.add(text)
        with self._lock:
            strikes = self._strikes[text] = self._strikes.get(text, 0) + 1
            if len(self._strikes) > _CACHE_SIZE:
                self._strikes.clear()
        if strikes >= 2:
            self._remember(self._parsed, text, False)
        return False

    def _call(self, message: dict[str, Any], stats: CheckStats):
        stats.round_trips += 1
        try:
            reply = self.pool.call(message, self.timeout_seconds)
        except WorkerFailed:
            stats.failures += 1
            return None
        if reply.status == "timeout":
            stats.timeouts += 1
        elif reply.status == "failed":
            stats.failures += 1
        return reply

    def equivalent(self, a: str, b: str, stats: CheckStats) -> bool:
        """Symmetric math-verify equivalence with vetoes; a timeout or failure means "not equivalent"."""
        pair = (a, b) if a <= b else (b, a)
        cached = self._recall(self._results, pair)
        if cached is not None:
            stats.cache_hits += 1
            return cached
        if len(a) > MAX_PARSE_CHARS or len(b) > MAX_PARSE_CHARS:
            stats.skipped += 1
            return False
        if stats.timeouts >= MAX_TIMEOUTS_PER_GROUP:
            stats.skipped += 1
            return False
        # Parsing each side first pins a timeout on the answer that caused it; that answer is then
        # never sent again, so one hostile rollout costs one time limit, not one per class.
        if not (self._parses(pair[0], stats) and self._parses(pair[1], stats)):
            stats.skipped += 1
            return False
        stats.semantic_checks += 1
        reply = self._call({"op": "equivalent", "a": pair[0], "b": pair[1]}, stats)
        if reply is None or reply.status != "ok":
            return False  # not cached: a timeout may be load, not the pair
        stats.verify_calls += int(reply.result.get("verify_calls", 0))
        if reply.result.get("veto"):
            stats.vetoes += 1
            stats.veto_reasons.append(str(reply.result["veto"]))
        same = bool(reply.result.get("equivalent"))
        self._remember(self._results, pair, same)
        return same


def atoms_equivalent(a: Atom, b: Atom, compare: str, checker: SemanticChecker, stats: CheckStats) -> tuple[bool, str]:
    """Whether two atoms are equivalent, and what decided it (``"same_key"`` or ``"verify"``)."""
    decided = keys_decide(a.key, b.key)
    if decided is not None or compare != "math":
        stats.fast_path += 1
        return bool(decided), "same_key"
    return checker.equivalent(a.normalized, b.normalized, stats), "verify"


def cluster(answers: Sequence[str | None], compare: str, checker: SemanticChecker) -> AnswerClasses:
    """Group answers into equivalence classes (ids in order of first appearance, ``-1`` = no answer).

    Each class's diagnostics count how its members joined: ``first``, ``exact_string`` (a string
    already seen), ``normalised`` (same normalised string), ``same_<kind>`` (same exact rational,
    set, sequence or word under another spelling), ``verify`` (the semantic checker); and the
    ``checks`` and ``timeouts`` of semantic checks made against its representative.
    """
    stats = CheckStats()
    by_string: dict[str, int] = {}  # exact string -> class
    by_normalized: set[str] = set()
    by_key: dict[Key, int] = {}  # fast-path key -> class
    representatives: list[str] = []
    class_atoms: list[Atom] = []
    formed: list[Counter[str]] = []
    class_ids: list[int] = []
    for answer in answers:
        if answer is None:
            class_ids.append(-1)
            continue
        k = by_string.get(answer)
        if k is not None:
            formed[k]["exact_string"] += 1
            class_ids.append(k)
            continue
        atom = make_atom(answer, compare)
        if not atom.normalized:  # "", "$ $", "\\,": an empty answer must not win a vote
            class_ids.append(-1)
            continue
        k = by_key.get(atom.key)
        if k is not None:
            formed[k]["normalised" if atom.normalized in by_normalized else f"same_{atom.key.kind}"] += 1
        else:
            k = _place(atom, class_atoms, formed, compare, checker, stats)
            if k == len(representatives):
                representatives.append(answer)
                class_atoms.append(atom)
            by_key[atom.key] = k
        by_normalized.add(atom.normalized)
        by_string[answer] = k
        class_ids.append(k)
    classes = AnswerClasses(list(answers), class_ids, representatives)
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


def _place(atom: Atom, class_atoms: list[Atom], formed: list[Counter[str]], compare: str,
           checker: SemanticChecker, stats: CheckStats) -> int:
    """The class ``atom`` joins: the first whose representative it is equivalent to, else a new one."""
    for k, representative in enumerate(class_atoms):
        checks, timeouts = stats.semantic_checks, stats.timeouts
        same, how = atoms_equivalent(atom, representative, compare, checker, stats)
        if stats.semantic_checks > checks:
            formed[k]["checks"] += stats.semantic_checks - checks
        if stats.timeouts > timeouts:
            formed[k]["timeouts"] += stats.timeouts - timeouts
        if same:
            formed[k][how] += 1
            return k
    formed.append(Counter(first=1))
    return len(class_atoms)

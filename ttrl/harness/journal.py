"""Finished shard jobs: kept in memory, and with ``--output`` also appended to a journal for ``--resume``.

The journal, ``RESULTS.json.partial.jsonl``, is plain JSON Lines: a header with the run's
fingerprint, then one shard job's result per line, exactly the dict the job returned (see
:mod:`ttrl.harness.shard`). JSON writes every float in its shortest exact form, so what is read back
is what was computed, and a resumed run gives the uninterrupted run's numbers.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from ttrl.core.errors import UserError
from ttrl.core.rollout_files import drop_partial_last_line

from .plan import BenchPlan
from .sources import DataSet

JOURNAL_VERSION = 3  # 3: plain JSON columns; the truth columns once per shard


def journal_path(output: Path) -> Path:
    return output.with_name(output.name + ".partial.jsonl")


def fingerprint(plan: BenchPlan, data: DataSet, shard_size: int) -> str:
    """What a journal must match to be resumed: the plan, the data's identity and the shard size."""
    payload = json.dumps([JOURNAL_VERSION, plan.key(), data.identity, shard_size])
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


class MemoryJournal:
    """The finished shard jobs of a run, as the jobs returned them; nothing is written or encoded."""

    path: Path | None = None

    def __init__(self):
        self.done: dict[tuple[str, int], dict[str, Any]] = {}  # (estimator label, shard) -> its result
        self.shards: dict[int, dict[str, Any]] = {}  # shard -> the last job on it (truth columns, timings)

    def add(self, shard_result: dict[str, Any]) -> None:
        for label, result in shard_result["estimators"].items():
            self.done[(label, shard_result["shard"])] = result
        # every job on a shard grades it the same way: the last one's truth columns stand for all
        self.shards[shard_result["shard"]] = shard_result

    def close(self) -> None:
        pass


class Journal(MemoryJournal):
    """A :class:`MemoryJournal` that also appends every shard job to ``path``, flushed per line.

    Flushed, not fsynced: the lines survive a killed process or worker (the case ``--resume`` is for);
    an fsync per shard would cost more than majority vote itself on slow disks.
    """

    def __init__(self, path: Path, fingerprint: str, *, resume: bool):
        super().__init__()
        self.path = path
        if resume and path.exists():
            drop_partial_last_line(path)  # the line the interruption cut short
            self._load(fingerprint)
            self.handle = path.open("a", encoding="utf-8")
        else:
            self.handle = path.open("w", encoding="utf-8")
            self._write({"ttrl_bench_journal": JOURNAL_VERSION, "fingerprint": fingerprint})

    def _load(self, fingerprint: str) -> None:
        with self.path.open(encoding="utf-8") as handle:
            try:
                header = json.loads(next(handle, ""))
            except json.JSONDecodeError:
                header = {}
            if not isinstance(header, dict) or header.get("fingerprint") != fingerprint:
                raise UserError(
                    f"--resume: {self.path} belongs to a different run (other data, estimators, options or "
                    "shard size). Repeat the original command with --resume, or drop --resume to start over."
                )
            for line in handle:
                if line.strip():
                    super().add(json.loads(line))

    def _write(self, obj: dict[str, Any]) -> None:
        # a shard result holds only numbers, None, strings, lists and dicts the harness built: plain
        # json.dumps, not the estimate writer's walk that cleans third-party diagnostics
        self.handle.write(json.dumps(obj, ensure_ascii=False, allow_nan=False) + "\n")

    def add(self, shard_result: dict[str, Any]) -> None:
        self._write(shard_result)
        self.handle.flush()
        super().add(shard_result)

    def close(self) -> None:
        self.handle.close()

"""A pool of checker processes with wall-clock limits that work from any thread.

math-verify's timeouts use ``signal.alarm``, which raises in any thread but the main one; OpenRLHF
calls reward code through ``asyncio.to_thread`` and Ray runs actor methods off the main thread. So
the semantic checker runs in worker processes (``python -m ttrl.core.answers.checker``, started
with :mod:`subprocess`, which also works inside daemonic processes where :mod:`multiprocessing`
may not start children). The caller waits for each reply with ``select`` and a deadline; a worker
that misses it is killed and replaced on next use. Workers exit when their stdin closes, so they
go away with their parent; :func:`shutdown` (run at interpreter exit) kills and reaps them.

A pool whose workers fail to start :data:`MAX_START_FAILURES` times in a row stops trying: every later
request fails at once (no start-up wait per comparison) except one retry every
:data:`RETRY_AFTER_SECONDS`, :attr:`CheckerPool.unavailable` says why, and one
:class:`AnswerCheckerWarning` is issued (the CLI prints it; trainers read the engine's
``health()``).
"""

from __future__ import annotations

import atexit
import json
import os
import queue
import select
import struct
import subprocess
import sys
import threading
import time
import warnings
from dataclasses import dataclass
from typing import Any

_HEADER = struct.Struct(">I")
#: Time a fresh worker may take to import sympy and math-verify (not counted against any request).
STARTUP_SECONDS = float(os.environ.get("TTRL_ANSWER_WORKER_STARTUP", "60"))
#: Consecutive start-up failures after which a pool gives up on starting workers.
MAX_START_FAILURES = 3
#: After giving up, a pool tries one start again after this long (a long training run may outlive a
#: passing cause such as memory pressure); every other request in between fails at once.
RETRY_AFTER_SECONDS = float(os.environ.get("TTRL_ANSWER_WORKER_RETRY", "300"))


def _warning_class() -> type[Warning]:
    from ..plugins import PluginWarning  # the CLI prints these as one "Warning: ..." line

    class AnswerCheckerWarning(PluginWarning):
        """The answer checker cannot run: comparisons that need it count as "not equivalent"."""

    return AnswerCheckerWarning


AnswerCheckerWarning = _warning_class()


def default_size() -> int:
    """Workers per process: ``TTRL_ANSWER_WORKERS``, else the CPU count capped at 4."""
    configured = os.environ.get("TTRL_ANSWER_WORKERS")
    if configured:
        return max(1, int(configured))
    return max(1, min(4, os.cpu_count() or 1))


class WorkerFailed(Exception):
    """A worker died, replied garbage, or could not start; the request it had is lost."""


@dataclass
class Reply:
    """Outcome of one request: ``status`` is ``"ok"``, ``"timeout"`` or ``"failed"``."""

    status: str
    result: dict[str, Any]
    seconds: float


class _Worker:
    def __init__(self) -> None:
        env = dict(os.environ)
        env.setdefault("PYTHONHASHSEED", "0")
        try:
            self.process = self._spawn(env)
        except OSError as exc:  # no fork, no executable: every comparison degrades, the caller lives
            raise WorkerFailed(f"cannot start an answer checker worker: {exc}") from exc
        self._buffer = b""
        try:
            ready = self.read(time.monotonic() + STARTUP_SECONDS)
        except WorkerFailed:
            ready = None
        if ready is None or "ready" not in ready:
            self.kill()
            raise WorkerFailed("answer checker worker did not start")

    @staticmethod
    def _spawn(env: dict[str, str]) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "ttrl.core.answers.checker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            # Quiet unless TTRL_DEBUG is set: then a worker that cannot start says why.
            stderr=None if os.environ.get("TTRL_DEBUG", "").strip() not in ("", "0") else subprocess.DEVNULL,
            env=env,
            close_fds=True,
            start_new_session=True,  # a Ctrl-C meant for the caller does not kill its workers
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def send(self, message: dict[str, Any]) -> None:
        payload = json.dumps(message).encode("utf-8")
        assert self.process.stdin is not None
        self.process.stdin.write(_HEADER.pack(len(payload)) + payload)
        self.process.stdin.flush()

    def _fill(self, size: int, deadline: float) -> bool:
        fd = self.process.stdout.fileno()  # type: ignore[union-attr]
        while len(self._buffer) < size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            readable, _, _ = select.select([fd], [], [], remaining)
            if not readable:
                return False
            chunk = os.read(fd, 65536)
            if not chunk:
                raise WorkerFailed("answer checker worker exited")
            self._buffer += chunk
        return True

    def read(self, deadline: float) -> dict[str, Any] | None:
        """The next reply, or ``None`` when the deadline passes first."""
        if not self._fill(_HEADER.size, deadline):
            return None
        (size,) = _HEADER.unpack(self._buffer[: _HEADER.size])
        if not self._fill(_HEADER.size + size, deadline):
            return None
        payload = self._buffer[_HEADER.size : _HEADER.size + size]
        self._buffer = self._buffer[_HEADER.size + size :]
        try:
            return json.loads(payload.decode("utf-8"))
        except ValueError as exc:
            raise WorkerFailed("answer checker worker sent an unreadable reply") from exc

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        for stream in (self.process.stdin, self.process.stdout):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass
        if self.process.poll() is None:
            self.process.kill()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:  # unkillable (D state): nothing more we can do
            pass


class CheckerPool:
    """A fixed number of worker slots shared by all threads of one process."""

    def __init__(self, size: int | None = None) -> None:
        self.size = size or default_size()
        self._idle: queue.LifoQueue[list[_Worker | None]] = queue.LifoQueue()
        self._slots: list[list[_Worker | None]] = [[None] for _ in range(self.size)]
        for slot in self._slots:
            self._idle.put(slot)
        self.owner_pid = os.getpid()
        self.started = 0
        self.killed = 0
        self.start_failures = 0
        #: Why the pool gave up starting workers (``None`` while it still tries).
        self.unavailable: str | None = None
        self._failures_in_a_row = 0
        self._gave_up_at = 0.0
        self._state_lock = threading.Lock()
        self._closed = False

    def _new_worker(self) -> _Worker:
        """A started worker; after :data:`MAX_START_FAILURES` failures in a row, fail without trying."""
        with self._state_lock:
            if self.unavailable is not None:
                if time.monotonic() - self._gave_up_at < RETRY_AFTER_SECONDS:
                    raise WorkerFailed(self.unavailable)
                self._gave_up_at = time.monotonic()  # one more attempt now, then wait again
                retry = True
            else:
                retry = False
        try:
            worker = _Worker()
        except WorkerFailed as exc:
            with self._state_lock:
                self.start_failures += 1
                self._failures_in_a_row += 1
                give_up = self._failures_in_a_row >= MAX_START_FAILURES and self.unavailable is None
                if give_up or retry:
                    self._gave_up_at = time.monotonic()
                if give_up:
                    self.unavailable = (
                        f"the answer checker could not start ({exc}; {self._failures_in_a_row} attempts in a row): "
                        "answers that need math-verify are compared by their normalised text only. "
                        "Check that math-verify is installed in this Python environment (pip install math-verify) "
                        "and that worker processes can start (TTRL_DEBUG=1 shows details)."
                    )
            if give_up:
                warnings.warn(self.unavailable, AnswerCheckerWarning, stacklevel=2)
            raise
        with self._state_lock:
            self._failures_in_a_row = 0
            self.unavailable = None  # a retry that worked: the checker is back
            self.started += 1
        return worker

    def call(self, message: dict[str, Any], seconds: float) -> Reply:
        """Run one request with a wall-clock limit of ``seconds`` (the wait for a free slot and a worker's
        start-up are not counted)."""
        if self._closed:
            raise WorkerFailed("answer checker pool is shut down")
        slot = self._idle.get()
        try:
            worker = slot[0]
            if worker is None or not worker.alive():
                worker = slot[0] = self._new_worker()
            started = time.monotonic()
            try:
                worker.send({**message, "seconds": seconds * 0.9})
                reply = worker.read(started + seconds)
            except (WorkerFailed, OSError, ValueError):
                reply = {"error": "worker failed", "crashed": True}
                self._retire(slot)
                return Reply("failed", reply, time.monotonic() - started)
            if reply is None:
                self._retire(slot)
                return Reply("timeout", {"timeout": True}, time.monotonic() - started)
            status = "timeout" if reply.get("timeout") else "failed" if "error" in reply else "ok"
            return Reply(status, reply, time.monotonic() - started)
        finally:
            self._idle.put(slot)

    def start(self) -> None:
        """Start every worker now (a trainer does this at start-up rather than in its first step)."""
        slots = [self._idle.get() for _ in range(self.size)]
        try:
            for slot in slots:
                if slot[0] is None or not slot[0].alive():
                    slot[0] = self._new_worker()
        finally:
            for slot in slots:
                self._idle.put(slot)

    def _retire(self, slot: list[_Worker | None]) -> None:
        worker, slot[0] = slot[0], None
        if worker is not None:
            worker.kill()
            self.killed += 1

    def pids(self) -> list[int]:
        return [slot[0].pid for slot in self._slots if slot[0] is not None and slot[0].alive()]

    def shutdown(self) -> None:
        """Kill and reap every worker; later calls fail with :class:`WorkerFailed`."""
        self._closed = True
        for slot in self._slots:
            if slot[0] is not None:
                self._retire(slot)


_pool: CheckerPool | None = None
_pool_lock = threading.Lock()


def get_pool() -> CheckerPool:
    """The process-wide pool, created on first use (and again in a forked child, which must not
    share its parent's workers)."""
    global _pool
    with _pool_lock:
        if _pool is None or _pool.owner_pid != os.getpid() or _pool._closed:
            _pool = CheckerPool()
        return _pool


def shutdown() -> None:
    """Stop the process-wide pool's workers (registered with :mod:`atexit`)."""
    global _pool
    with _pool_lock:
        pool, _pool = _pool, None
    if pool is not None and pool.owner_pid == os.getpid():
        pool.shutdown()


atexit.register(shutdown)

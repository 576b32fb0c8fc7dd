"""A wall-clock limit for calling plugin code, usable from any thread.

``signal.alarm`` works only in the main thread, and trainers call estimators from worker threads
(OpenRLHF's Ray actors, TRL's reward functions under accelerate). So the call runs in a fresh daemon
thread and the caller waits at most ``seconds`` for it. When the time is up the caller gets
:class:`TimeLimitExceeded` at once; the late thread is asked to stop by raising
:class:`CallAbandoned` inside it (CPython checks for it between bytecodes, so a pure-Python loop
stops; a call stuck in C code finishes on its own, and its result is thrown away).

Exceptions raised by the call, ``BaseException`` included, are re-raised in the caller unchanged.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class TimeLimitExceeded(Exception):
    """The call did not finish within its limit."""

    def __init__(self, seconds: float, still_running: bool):
        super().__init__(f"did not finish within {seconds:g} s")
        self.seconds = seconds
        #: Whether the abandoned thread was still running when the caller gave up on it.
        self.still_running = still_running


class CallAbandoned(BaseException):
    """Raised inside a thread whose caller stopped waiting for it."""


#: How long the caller waits for an abandoned thread to honour :class:`CallAbandoned`.
STOP_GRACE_SECONDS = 0.2


def _interrupt(thread: threading.Thread) -> None:
    if thread.ident is not None:
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident), ctypes.py_object(CallAbandoned))


def call_with_time_limit(function: Callable[[], T], seconds: float | None, *, name: str = "ttrl-call") -> T:
    """``function()``, or :class:`TimeLimitExceeded` after ``seconds`` (``None``: no limit, same thread)."""
    if seconds is None:
        return function()
    outcome: dict[str, object] = {}

    def target() -> None:
        try:
            outcome["value"] = function()
        except CallAbandoned:
            pass
        except BaseException as exc:  # noqa: BLE001 - handed to the caller as it is
            outcome["error"] = exc

    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        _interrupt(thread)
        thread.join(STOP_GRACE_SECONDS)
        raise TimeLimitExceeded(seconds, thread.is_alive())
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]  # type: ignore[return-value]

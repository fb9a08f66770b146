"""A hard limit on a training segment or an evaluation, at no per-step cost.

A submission's ``update`` that never returns would otherwise hang a run for
good, with no record. The runner arms a :class:`Watchdog` once per segment
(from one eval boundary to the next) and once per evaluation, and disarms it
when the segment or evaluation ends: a lock and a notify at each boundary,
nothing per step. One daemon thread sleeps until the armed deadline; if it
passes while still armed, the thread interrupts the run's thread with
:class:`WatchdogExpired`, which the runner turns into status ``error``.

How the run's thread is interrupted:

* the main thread (``bench run``, notebooks, tests): a real ``SIGALRM`` sent to
  it (``signal.pthread_kill``), handled by a handler installed for the run and
  restored after. A real signal also wakes a thread blocked in ``time.sleep``
  or a lock; the handler raises only while a deadline is armed and has
  passed, and passes any other ``SIGALRM`` on to the handler it replaced;
* any other thread (or no ``pthread_kill``): an asynchronous exception
  (``PyThreadState_SetAsyncExc``), raised at the thread's next bytecode.

Either way Python code is interrupted, a busy ``while True: pass`` included;
a call into C that never returns (a kernel, a collective) is not, and ends
the run only when it returns, if ever.
"""

from __future__ import annotations

import ctypes
import signal
import threading
import time
from typing import Any

#: The signal that carries an expiry to the main thread.
SIGNAL = getattr(signal, "SIGALRM", None)


class WatchdogExpired(BaseException):
    """Raised in the run's thread when a segment or evaluation overran the limit.

    A BaseException, as KeyboardInterrupt: a submission's ``except Exception``
    must not swallow it.
    """


class Watchdog:
    """Arm with what is running ("step", "evaluation"); disarm when it returns.

    ``limit_s`` None: a watchdog that never fires (and starts no thread).
    ``fired`` keeps the message of the last expiry for the run's record.
    """

    def __init__(self, limit_s: float | None, why: str = "") -> None:
        self.limit_s = limit_s
        self.why = why  # how the limit was set, for the message
        self.fired: str | None = None
        self._cond = threading.Condition()
        self._deadline: float | None = None
        self._what = ""
        self._pending = False  # an expiry the run's thread has not yet been interrupted for
        self._closed = False
        self._thread_id = threading.get_ident()
        self._previous: Any = None
        self._use_signal = False
        self._watcher: threading.Thread | None = None

    # -- lifecycle (untimed: once per run) --------------------------------- #

    def start(self) -> "Watchdog":
        if self.limit_s is None:
            return self
        self._thread_id = threading.get_ident()
        on_main = threading.current_thread() is threading.main_thread()
        if on_main and SIGNAL is not None and hasattr(signal, "pthread_kill"):
            self._previous = signal.signal(SIGNAL, self._on_signal)
            self._use_signal = True
        self._watcher = threading.Thread(target=self._watch, name="optbench-watchdog", daemon=True)
        self._watcher.start()
        return self

    def close(self) -> None:
        """Stop the watcher and restore the signal handler (idempotent)."""
        with self._cond:
            self._closed, self._deadline = True, None
            self._withdraw()
            self._cond.notify()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
            self._watcher = None
        if self._use_signal:
            signal.signal(SIGNAL, self._previous if self._previous is not None else signal.SIG_DFL)
            self._use_signal = False

    # -- at eval boundaries ------------------------------------------------ #

    def arm(self, what: str) -> None:
        if self._watcher is None:
            return
        with self._cond:
            self._withdraw()
            self._deadline, self._what = time.monotonic() + self.limit_s, what
            self._cond.notify()

    def disarm(self) -> None:
        if self._watcher is None:
            return
        with self._cond:
            self._deadline = None
            self._withdraw()

    def _withdraw(self) -> None:
        """Forget an expiry not yet raised: the work returned just as the deadline passed."""
        if self._pending and not self._use_signal:
            # The async exception is still queued on the thread: take it back.
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self._thread_id), None)
        self._pending = False

    # -- the watcher thread ------------------------------------------------- #

    def _watch(self) -> None:
        with self._cond:
            while not self._closed:
                if self._deadline is None:
                    self._cond.wait()
                    continue
                left = self._deadline - time.monotonic()
                if left > 0:
                    # Capped: a limit of years (bench calibrate's unbounded
                    # budget) overflows the platform's timeout; waking hourly is free.
                    self._cond.wait(min(left, 3600.0))
                    continue
                self._expire()

    def _expire(self) -> None:
        """Called with the lock held, the deadline passed and still armed."""
        how = f" ({self.why})" if self.why else ""
        self.fired = f"{self._what} did not return within {self.limit_s:g} s{how}"
        self._pending = True
        # Fire again a limit later should the submission swallow the exception.
        self._deadline = time.monotonic() + self.limit_s
        if self._use_signal:
            signal.pthread_kill(self._thread_id, SIGNAL)
        else:
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self._thread_id), ctypes.py_object(WatchdogExpired))

    def _on_signal(self, signum, frame) -> None:
        # Runs in the main thread, between bytecodes: raise only for an expiry
        # still armed; a disarm in between means the work returned in time.
        if self._pending and self._deadline is not None:
            self._pending = False
            raise WatchdogExpired(self.fired)
        if callable(self._previous):
            self._previous(signum, frame)

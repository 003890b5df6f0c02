"""Per-test wall-clock limit (SIGALRM) so a hung test fails instead of stalling the run."""

from __future__ import annotations

import contextlib
import os
import signal
import threading

DEFAULT_TIMEOUT = float(os.environ.get("EQ1_TEST_TIMEOUT", "300"))


class TimeLimitExceeded(Exception):
    """Raised inside the test when its time limit expires."""


@contextlib.contextmanager
def time_limit(seconds: float, what: str = "test"):
    """Raise TimeLimitExceeded in the main thread after `seconds` (no-op off the main thread)."""
    if seconds <= 0 or threading.current_thread() is not threading.main_thread():
        yield
        return

    def _expired(signum, frame):
        raise TimeLimitExceeded(f"{what} exceeded {seconds:.0f}s")

    previous = signal.signal(signal.SIGALRM, _expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)

"""A program running in the background while the test acts: its output lines are collected
by a thread so the test can wait for a given line, then stop or SIGKILL the program."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from typing import Sequence

from .procutil import die_with_parent


class Background:
    def __init__(self, cmd: Sequence, env: dict | None = None, stdin: bool = False):
        full_env = dict(os.environ)
        full_env.update({k: str(v) for k, v in (env or {}).items()})
        self.cmd = [str(c) for c in cmd]
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     stdin=subprocess.PIPE if stdin else subprocess.DEVNULL, text=True, errors="replace",
                                     env=full_env, start_new_session=True,
                                     preexec_fn=die_with_parent)
        self._lines: list[str] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                self._lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    @property
    def lines(self) -> list[str]:
        with self._cond:
            return list(self._lines)

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def mark(self) -> int:
        """A position in the output: later waits can look only at lines after it."""
        with self._cond:
            return len(self._lines)

    def send(self, line: str) -> None:
        """Writes one command line to the program's stdin (needs stdin=True)."""
        assert self.proc.stdin is not None, "started without stdin=True"
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def ask(self, command: str, answer_prefix: str, timeout: float = 60.0) -> str:
        """Sends a command and returns the first answer line after it."""
        since = self.mark()
        self.send(command)
        return self.wait_for_line(answer_prefix, timeout, since=since)

    def wait_for_line(self, prefix: str, timeout: float = 20.0, since: int = 0,
                      where=None) -> str:
        """The first output line after `since` starting with `prefix` (and satisfying
        `where(line)` when given); fails with the output so far."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self._lines[since:]:
                    if line.startswith(prefix) and (where is None or where(line)):
                        return line
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError(f"no line starting with {prefix!r} from {self.cmd} "
                                         f"within {timeout}s; output:\n" + "\n".join(self._lines))
                self._cond.wait(min(left, 0.2))

    def wait(self, timeout: float = 30.0) -> int:
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"{self.cmd} did not exit within {timeout}s; output:\n"
                                 + self.output) from None
        self._reader.join(5)
        return code

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to say goodbye (no DISCONNECT)."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(10)

    def __enter__(self) -> "Background":
        return self

    def __exit__(self, *exc) -> None:
        self.kill()

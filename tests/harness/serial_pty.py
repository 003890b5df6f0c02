"""Pseudo-terminal pairs made by socat (Debian) for the serial tests, and a relay between two
pairs that can corrupt a response on its way back (CRC error injection)."""

from __future__ import annotations

import os
import select
import subprocess
import threading
import time
import tty
from pathlib import Path

from .procutil import die_with_parent


class PtyPair:
    """``socat pty,raw,echo=0,link=A pty,raw,echo=0,link=B``: bytes written to one end come
    out of the other."""

    def __init__(self, directory: Path, name: str) -> None:
        self.a = str(directory / f"{name}-a")
        self.b = str(directory / f"{name}-b")
        self.proc = subprocess.Popen(
            ["socat", f"pty,raw,echo=0,link={self.a}", f"pty,raw,echo=0,link={self.b}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
            preexec_fn=die_with_parent)
        deadline = time.monotonic() + 20
        while not (os.path.exists(self.a) and os.path.exists(self.b)):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                raise RuntimeError(f"socat made no pty pair: {err}")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


class CorruptingRelay:
    """Copies bytes between ``client_side`` and ``server_side`` (two pty ends); flips one bit of
    the response to the request number ``corrupt`` (counted from 1 by the requests that passed
    towards the server). ``corrupted`` counts the responses it damaged."""

    def __init__(self, client_side: str, server_side: str, corrupt: set[int]) -> None:
        self.client_fd = os.open(client_side, os.O_RDWR | os.O_NOCTTY)
        self.server_fd = os.open(server_side, os.O_RDWR | os.O_NOCTTY)
        for fd in (self.client_fd, self.server_fd):
            tty.setraw(fd)
        self.corrupt = corrupt
        self.corrupted = 0
        self.requests = 0
        self._damaged_for = 0
        self._last_from_client = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self.client_fd, self.server_fd], [], [], 0.05)
            for fd in ready:
                try:
                    data = bytearray(os.read(fd, 4096))
                except OSError:
                    continue
                if fd == self.client_fd:
                    # A request may come in several reads: the first after a response counts.
                    if not self._last_from_client:
                        self.requests += 1
                    self._last_from_client = True
                    os.write(self.server_fd, data)
                else:
                    self._last_from_client = False
                    if self.requests in self.corrupt and self._damaged_for != self.requests:
                        self._damaged_for = self.requests
                        data[min(2, len(data) - 1)] ^= 0x01
                        self.corrupted += 1
                    os.write(self.client_fd, data)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        os.close(self.client_fd)
        os.close(self.server_fd)

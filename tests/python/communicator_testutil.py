"""Helpers shared by the communicator tests (imported by name: tests/python is on sys.path)."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Callable

import pytest

REPO = Path(__file__).resolve().parents[2]
BINDINGS = REPO / "bindings" / "python"
#: What a package build must not copy (build leftovers, a library from an earlier build).
PACKAGE_IGNORE = shutil.ignore_patterns("__pycache__", "build", "*.egg-info", "libeq1.so*")


def copy_package_source(dest: Path) -> Path:
    """A copy of what the package build needs (the crate and bindings/python), laid out as in
    the repository, so that pip builds in the copy and leaves the checkout clean; returns the
    copy's bindings/python."""
    for name in ("Cargo.toml", "Cargo.lock", "build.rs"):
        shutil.copy(REPO / name, dest / name)
    shutil.copytree(REPO / "src", dest / "src")
    shutil.copytree(BINDINGS, dest / "bindings" / "python", ignore=PACKAGE_IGNORE)
    return dest / "bindings" / "python"


def pip(python: str, *args: str) -> None:
    """``python -m pip args...``, failing the test with pip's output."""
    # The build reuses the repository's cargo target folder for the dependencies' artefacts.
    env = {k: v for k, v in os.environ.items() if k not in ("EQ1_LIBRARY", "PYTHONPATH")}
    env["CARGO_TARGET_DIR"] = str(REPO / "target")
    r = subprocess.run([python, "-m", "pip", "--no-input", "--disable-pip-version-check",
                        *args], capture_output=True, text=True, timeout=1500, env=env)
    assert r.returncode == 0, r.stdout + r.stderr


def wait_until(condition: Callable[[], Any], timeout: float = 10.0, what: str = "condition"):
    """Polls until `condition()` is truthy; returns its value or fails the test."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


class Inbox:
    """A thread-safe message callback that records (topic, payload) and the calling thread."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.messages: list[tuple[str, bytes]] = []
        self.threads: set[int] = set()

    def __call__(self, topic: str, payload: bytes) -> None:
        with self._cond:
            self.messages.append((topic, payload))
            self.threads.add(threading.get_ident())
            self._cond.notify_all()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[tuple[str, bytes]]:
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.messages) >= count, timeout):
                pytest.fail(f"expected {count} messages, got {len(self.messages)}: "
                            f"{self.messages[:10]}")
            return list(self.messages)

    def payloads(self) -> list[bytes]:
        with self._cond:
            return [p for _, p in self.messages]


class FakeBroker:
    """A loopback TCP server that answers the client's CONNECT with scripted raw bytes, then
    each later packet with `respond(first_byte, body) -> bytes`, for broker behaviour a real
    mosquitto never shows. Close it (or use `with`)."""

    def __init__(self, *replies: bytes,
                 respond: Callable[[int, bytes], bytes] | None = None) -> None:
        import socket

        self.replies = replies
        self.respond = respond
        self._server = socket.socket()
        self._server.bind(("127.0.0.1", 0))
        self._server.listen()
        self._server.settimeout(0.2)
        self.port: int = self._server.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @staticmethod
    def _read_packet(conn) -> tuple[int, bytes]:
        def exact(n: int) -> bytes:
            data = b""
            while len(data) < n:
                chunk = conn.recv(n - len(data))
                if not chunk:
                    raise ConnectionError("closed")
                data += chunk
            return data

        first = exact(1)[0]
        length, shift = 0, 0
        while True:
            byte = exact(1)[0]
            length |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        return first, exact(length)

    def _run(self) -> None:
        import socket

        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with conn:
                try:
                    conn.settimeout(0.2)
                    self._serve(conn)
                except (OSError, ConnectionError):
                    pass

    def _serve(self, conn) -> None:
        import socket

        connected = False
        while not self._stop.is_set():
            try:
                first, body = self._read_packet(conn)
            except socket.timeout:
                continue
            if not connected:
                connected = True
                for reply in self.replies:
                    conn.sendall(reply)
                    time.sleep(0.05)
            elif self.respond is not None:
                conn.sendall(self.respond(first, body))

    def close(self) -> None:
        self._stop.set()
        self._server.close()
        self._thread.join(10)

    def __enter__(self) -> "FakeBroker":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

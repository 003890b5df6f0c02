"""An echo/framing server (Python's socketserver) for the TCP request/response tests, run as its
own process: ``python3 -m harness.tcp_echo_server PORT FRAMING [DELIMITER_HEX] [--tls CERT KEY
[CLIENT_CA]]``. FRAMING is ``raw`` (every chunk received is sent back as it is), ``u16`` /
``u32`` (big-endian length prefix) or ``delimiter``. In the framed modes each message is
answered with the same message, except these commands:

  ``!close``          answered, then the connection is closed (FIN)
  ``!reset``          answered, then the connection is reset (RST: SO_LINGER 0)
  ``!drop-once:ID``   the first time (any connection) the connection is closed without an
                      answer; later ones are answered
  ``!partial``        half an answer frame, then the connection is closed
  ``!silent``         no answer
  ``!big:N``          answered with a message of N bytes ``x``

It prints one line per event on stdout (``ready``, ``accepted``, ``closed ID`` after closing for
``!close``/``!reset``/``!drop-once``, ``seen ID N``), which ``EchoServer`` reads for the tests.
"""

from __future__ import annotations

import socket
import socketserver
import ssl
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

# ---------------------------------------------------------------- the server process


def _frames(framing: str, delimiter: bytes):  # type: ignore[no-untyped-def]
    """(read_message(sock_file) -> bytes | None, encode(bytes) -> bytes)."""

    def read_exact(f, n: int) -> bytes | None:  # type: ignore[no-untyped-def]
        data = f.read(n)
        return data if data is not None and len(data) == n else None

    if framing in ("u16", "u32"):
        fmt, size = (">H", 2) if framing == "u16" else (">I", 4)

        def read(f):  # type: ignore[no-untyped-def]
            header = read_exact(f, size)
            if header is None:
                return None
            (length,) = struct.unpack(fmt, header)
            return read_exact(f, length) if length else b""

        return read, lambda m: struct.pack(fmt, len(m)) + m
    if framing == "delimiter":
        def read_delimited(f):  # type: ignore[no-untyped-def]
            data = b""
            while not data.endswith(delimiter):
                byte = f.read(1)
                if not byte:
                    return None
                data += byte
            return data[:-len(delimiter)]

        return read_delimited, lambda m: m + delimiter
    raise SystemExit(f"unknown framing {framing}")


def _say(line: str) -> None:
    print(line, flush=True)


def main(argv: list[str]) -> None:
    port, framing = int(argv[1]), argv[2]
    rest = argv[3:]
    delimiter = b""
    if framing == "delimiter":
        delimiter, rest = bytes.fromhex(rest[0]), rest[1:]
    context = None
    if rest and rest[0] == "--tls":
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(rest[1], rest[2])
        if len(rest) > 3:
            context.load_verify_locations(rest[3])
            context.verify_mode = ssl.CERT_REQUIRED
    seen: dict[str, int] = {}
    seen_lock = threading.Lock()

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            sock = self.request
            if context is not None:
                try:
                    sock = context.wrap_socket(sock, server_side=True)
                except (ssl.SSLError, OSError) as e:
                    _say(f"tls-failed {e}")
                    return
            _say("accepted")
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if framing == "raw":
                while chunk := sock.recv(65536):
                    sock.sendall(chunk)
                return
            read, encode = _frames(framing, delimiter)
            f = sock.makefile("rb")
            while (message := read(f)) is not None:
                if not message.startswith(b"!"):
                    sock.sendall(encode(message))
                    continue
                command = message.decode(errors="replace")
                if command in ("!close", "!reset"):
                    sock.sendall(encode(message))
                    if command == "!reset":
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                        struct.pack("ii", 1, 0))
                    f.close()
                    sock.close()
                    _say(f"closed {command[1:]}")
                    return
                if command.startswith("!drop-once:"):
                    key = command.split(":", 1)[1]
                    with seen_lock:
                        seen[key] = count = seen.get(key, 0) + 1
                    _say(f"seen {key} {count}")
                    if count == 1:
                        f.close()
                        sock.close()
                        _say(f"closed {key}")
                        return
                    sock.sendall(encode(message))
                elif command == "!partial":
                    frame = encode(b"p" * 64)
                    sock.sendall(frame[:len(frame) // 2])
                    with seen_lock:
                        seen["partial"] = count = seen.get("partial", 0) + 1
                    _say(f"seen partial {count}")
                    f.close()
                    sock.close()
                    return
                elif command == "!silent":
                    pass
                elif command.startswith("!big:"):
                    sock.sendall(encode(b"x" * int(command.split(":", 1)[1])))
                else:
                    sock.sendall(encode(message))

    class Server(socketserver.ThreadingTCPServer):
        allow_reuse_address = True
        daemon_threads = True

        def handle_error(self, request, client_address):  # type: ignore[no-untyped-def]
            pass  # a client that vanished mid-exchange is part of the tests

    with Server(("127.0.0.1", port), Handler) as server:
        _say("ready")
        server.serve_forever(poll_interval=0.1)


if __name__ == "__main__":
    main(sys.argv)


# ---------------------------------------------------------------- the tests' handle


class EchoServer:
    """The server above as a separate process on 127.0.0.1:<port>; ``kill`` SIGKILLs it,
    ``start`` starts it again on the same port; ``wait_for(line)`` waits for an event line."""

    def __init__(self, framing: str = "u16", delimiter: bytes = b"\n", port: int | None = None,
                 tls: tuple[str, ...] = ()) -> None:
        from .ports import free_port

        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.framing = framing
        self.delimiter = delimiter
        self.tls = tls
        self.proc: subprocess.Popen[str] | None = None
        self._lines: list[str] = []
        self._changed = threading.Condition()
        self.start()

    def start(self) -> None:
        import os

        from .procutil import die_with_parent

        env = dict(os.environ)
        env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
        args = [sys.executable, "-m", "harness.tcp_echo_server", str(self.port), self.framing]
        if self.framing == "delimiter":
            args.append(self.delimiter.hex())
        if self.tls:
            args += ["--tls", *self.tls]
        proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, start_new_session=True, preexec_fn=die_with_parent)
        self.proc = proc
        threading.Thread(target=self._read, args=(proc,), daemon=True).start()
        self.wait_for("ready", since=len(self.lines()), timeout=30)

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            with self._changed:
                self._lines.append(line.rstrip("\n"))
                self._changed.notify_all()

    def lines(self) -> list[str]:
        with self._changed:
            return list(self._lines)

    def mark(self) -> int:
        return len(self.lines())

    def wait_for(self, line: str, since: int = 0, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        with self._changed:
            while line not in self._lines[since:]:
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc is not None and self.proc.poll() is not None
                                 and line not in self._lines[since:]):
                    err = ""
                    if self.proc is not None and self.proc.poll() is not None and self.proc.stderr:
                        err = self.proc.stderr.read()
                    raise AssertionError(f"echo server never said {line!r}; it said "
                                         f"{self._lines[since:]!r} {err[-2000:]}")
                self._changed.wait(min(left, 0.2))

    def count(self, line: str) -> int:
        return self.lines().count(line)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None

    stop = kill

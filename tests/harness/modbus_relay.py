"""A loopback Modbus TCP relay between a client and a real server, frame by frame (MBAP), for
tests that look at or bend what is on the wire: how many requests the client had outstanding at
once (received by the relay, not yet answered), a response held back past its request's
timeout, or a response rewritten into bytes no real server sends (a transaction id no request
has, a protocol id other than 0).

Towards the server the relay hands over one request at a time, like a gateway in front of a
device that cannot pipeline: pymodbus 3.8's server handles one request per TCP read (its
ServerRequestHandler.callback_data frames one request and leaves the rest of the read in its
buffer until more bytes come), so requests that arrive together would wait there."""

from __future__ import annotations

import queue
import socket
import struct
import threading
import time
from typing import BinaryIO, Optional

from .ports import free_port

HEADER = 7
IO_TIMEOUT = 30.0


def _read_frame(stream: BinaryIO) -> Optional[bytes]:
    """One MBAP frame (header + PDU), or None at end of stream."""
    header = stream.read(HEADER)
    if not header or len(header) < HEADER:
        return None
    (length,) = struct.unpack(">H", header[4:6])
    body = stream.read(length - 1) if length > 1 else b""
    if len(body) < length - 1:
        return None
    return header + body


class ModbusRelay:
    """Forward 127.0.0.1:<self.port> to (target_host, target_port), frame by frame."""

    host = "127.0.0.1"

    def __init__(self, target_host: str, target_port: int):
        self._target = (target_host, target_port)
        self._lock = threading.Lock()
        self._outstanding = 0
        self.max_outstanding = 0
        self.requests = 0
        self.responses = 0
        self.connections = 0
        # Response number (counted from 0 over every connection) -> what to do with it.
        self._delays: dict[int, float] = {}
        self._rewrites: dict[int, str] = {}
        self._sockets: list[socket.socket] = []
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((self.host, free_port()))
        self._listener.listen(16)
        self.port = self._listener.getsockname()[1]
        self._running = True
        threading.Thread(target=self._accept, name=f"ModbusRelay:{self.port}",
                         daemon=True).start()

    def delay_response(self, number: int, seconds: float) -> None:
        """Hold response `number` back for `seconds` (the requests behind it wait)."""
        with self._lock:
            self._delays[number] = seconds

    def rewrite_response(self, number: int, field: str) -> None:
        """Rewrite response `number`: "transaction_id" flips its top bit (an id no request
        of the test has), "protocol_id" sets it to 1."""
        assert field in ("transaction_id", "protocol_id")
        with self._lock:
            self._rewrites[number] = field

    def close(self) -> None:
        self._running = False
        for sock in [self._listener, *self._sockets]:
            try:
                sock.close()
            except OSError:
                pass

    def _accept(self) -> None:
        while self._running:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self._target, timeout=IO_TIMEOUT)
            except OSError:
                client.close()
                continue
            for sock in (client, upstream):
                sock.settimeout(IO_TIMEOUT)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self.connections += 1
                self._sockets += [client, upstream]
            waiting: "queue.Queue[Optional[bytes]]" = queue.Queue()
            threading.Thread(target=self._requests, args=(client, waiting), daemon=True).start()
            threading.Thread(target=self._serve, args=(waiting, upstream, client),
                             daemon=True).start()

    def _requests(self, client: socket.socket, waiting: "queue.Queue[Optional[bytes]]") -> None:
        stream = client.makefile("rb")
        try:
            while (frame := _read_frame(stream)) is not None:
                with self._lock:
                    self.requests += 1
                    self._outstanding += 1
                    self.max_outstanding = max(self.max_outstanding, self._outstanding)
                waiting.put(frame)
        except OSError:
            pass
        finally:
            waiting.put(None)

    def _serve(self, waiting: "queue.Queue[Optional[bytes]]", upstream: socket.socket,
               client: socket.socket) -> None:
        """One request to the server, its response to the client, then the next."""
        stream = upstream.makefile("rb")
        try:
            while (request := waiting.get()) is not None:
                upstream.sendall(request)
                frame = _read_frame(stream)
                if frame is None:
                    break
                with self._lock:
                    number = self.responses
                    self.responses += 1
                    # Before the client can see it, so that its next request counts anew.
                    self._outstanding -= 1
                    delay = self._delays.pop(number, 0.0)
                    rewrite = self._rewrites.pop(number, None)
                if delay:
                    time.sleep(delay)
                if rewrite == "transaction_id":
                    frame = bytes([frame[0] ^ 0x80]) + frame[1:]
                elif rewrite == "protocol_id":
                    frame = frame[:2] + b"\x00\x01" + frame[4:]
                client.sendall(frame)
        except OSError:
            pass
        finally:
            for sock in (client, upstream):
                self._shut(sock)

    @staticmethod
    def _shut(sock: socket.socket) -> None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

"""A tiny MQTT 3.1.1 client on raw sockets, for injecting traffic independent of libeq1.

mosquitto_pub -l is not usable for bursts: at end of input it disconnects with
QoS 1 messages still queued, and they are lost.
"""

from __future__ import annotations

import socket
import struct
import time
from typing import Callable

CONNACK, PUBLISH, PUBACK, SUBACK = 2, 3, 4, 9


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        d, n = n % 128, n // 128
        out.append(d | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _str(s) -> bytes:
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("!H", len(b)) + b


def _packet(first: int, body: bytes) -> bytes:
    return bytes([first]) + _varint(len(body)) + body


class RawClient:
    """Blocking MQTT 3.1.1 connection; every read is bounded by `timeout`."""

    def __init__(self, host: str, port: int, client_id: str = "raw", *,
                 username: str | None = None, password: str | None = None,
                 clean: bool = True, keepalive: int = 60, timeout: float = 10.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buf = bytearray()
        flags = (0x02 if clean else 0) | (0x80 if username is not None else 0) | \
            (0x40 if password is not None else 0)
        body = _str("MQTT") + bytes([4, flags]) + struct.pack("!H", keepalive) + _str(client_id)
        if username is not None:
            body += _str(username)
        if password is not None:
            body += _str(password)
        self.sock.sendall(_packet(0x10, body))
        ptype, _, payload = self.read_packet()
        if ptype != CONNACK or payload[1] != 0:
            raise ConnectionError(f"CONNACK refused: type {ptype} payload {payload!r}")
        self.session_present = bool(payload[0] & 1)

    def read_packet(self) -> tuple[int, int, bytes]:
        """Return (type, flags, body) of the next packet."""
        while True:
            if len(self._buf) >= 2:
                mult, length, i = 1, 0, 1
                while i < len(self._buf):
                    b = self._buf[i]
                    length += (b & 0x7F) * mult
                    mult *= 128
                    i += 1
                    if not b & 0x80:
                        if len(self._buf) >= i + length:
                            first = self._buf[0]
                            body = bytes(self._buf[i:i + length])
                            del self._buf[:i + length]
                            return first >> 4, first & 0x0F, body
                        break
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed by peer")
            self._buf += chunk

    def subscribe(self, topic: str, qos: int = 1, packet_id: int = 1) -> None:
        self.sock.sendall(_packet(0x82, struct.pack("!H", packet_id) + _str(topic) + bytes([qos])))
        while True:
            ptype, _, _ = self.read_packet()
            if ptype == SUBACK:
                return

    def publish_burst(self, topic: str, count: int, qos: int = 1,
                      payload: Callable[[int], bytes] = lambda i: str(i).encode(),
                      retain: bool = False, window: int = 500) -> float:
        """Publish `count` messages, keeping up to `window` QoS 1 unacked; return seconds."""
        start = time.monotonic()
        sent = acked = 0
        first = 0x30 | (qos << 1) | (1 if retain else 0)
        while acked < count:
            batch = []
            while sent < count and (qos == 0 or sent - acked < window):
                pid = struct.pack("!H", sent % 65535 + 1) if qos else b""
                batch.append(_packet(first, _str(topic) + pid + payload(sent)))
                sent += 1
            if batch:
                self.sock.sendall(b"".join(batch))
            if qos == 0:
                acked = sent
                continue
            ptype, _, _ = self.read_packet()
            if ptype == PUBACK:
                acked += 1
        return time.monotonic() - start

    def disconnect(self) -> None:
        try:
            self.sock.sendall(b"\xe0\x00")
        finally:
            self.sock.close()

    def __enter__(self) -> "RawClient":
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.disconnect()
        except OSError:
            pass

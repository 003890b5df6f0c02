"""A SCRIPTED broker for MQTT 5.0 enhanced authentication, in Python: mosquitto 2.0.11 as
installed here has no enhanced-authentication plugin (it answers any authentication method
with CONNACK 0x8C, bad authentication method), so by the project's rule the broker's side of
the AUTH exchange is this small socket server. It is not a broker: it plays one toy method.

"TOY-CHALLENGE": after CONNECT it sends AUTH 0x18 with "challenge-<n>", wants "answer-<n>"
back (else CONNACK 0x87), then accepts with CONNACK carrying the final data "server-ok"
("server-forged" for a client id starting with "forged", which the client's callback must
reject). AUTH 0x19 (re-authentication) gets the next challenge and, once answered, AUTH 0x00.
It acknowledges QoS 1/2 publishes and answers PINGREQ; `log` records what it saw.
"""

from __future__ import annotations

import socket
import threading

METHOD = b"TOY-CHALLENGE"


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n % 128
        n //= 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def read_varint(data: bytes, at: int) -> tuple[int, int]:
    """An MQTT variable byte integer at `at`: (value, the offset after it)."""
    value, shift = 0, 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, at


def _prefixed(b: bytes) -> bytes:
    return len(b).to_bytes(2, "big") + b


def _auth_properties(data: bytes | None) -> bytes:
    props = b"\x15" + _prefixed(METHOD)
    if data is not None:
        props += b"\x16" + _prefixed(data)
    return _varint(len(props)) + props


def _packet(header: int, body: bytes) -> bytes:
    return bytes([header]) + _varint(len(body)) + body


def _parse_properties(props: bytes) -> dict[int, bytes]:
    """Authentication method / data (and skips the others a CONNECT or AUTH may carry)."""
    found: dict[int, bytes] = {}
    at = 0
    while at < len(props):
        pid = props[at]
        at += 1
        if pid in (0x15, 0x16, 0x1F):
            n = int.from_bytes(props[at:at + 2], "big")
            found[pid] = props[at + 2:at + 2 + n]
            at += 2 + n
        elif pid in (0x11, 0x27):
            at += 4
        elif pid in (0x21, 0x22):
            at += 2
        elif pid in (0x17, 0x19):
            at += 1
        elif pid == 0x26:
            for _ in range(2):
                n = int.from_bytes(props[at:at + 2], "big")
                at += 2 + n
        else:
            raise AssertionError(f"unexpected property {pid:#04x}")
    return found


class ScriptedAuthBroker:
    """The toy TOY-CHALLENGE broker on 127.0.0.1 (see the module docstring)."""

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.listener.settimeout(0.2)
        self.host, self.port = "127.0.0.1", self.listener.getsockname()[1]
        self.log: list[str] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self.listener.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except socket.timeout:
                continue
            threading.Thread(target=self._serve_safely, args=(conn,), daemon=True).start()

    def _serve_safely(self, conn: socket.socket) -> None:
        try:
            self._serve(conn)
        except (ConnectionError, TimeoutError, OSError):
            pass
        except AssertionError as e:
            self.errors.append(str(e))
        finally:
            conn.close()

    @staticmethod
    def _frame(conn: socket.socket, buf: bytearray) -> tuple[int, bytes] | None:
        while True:
            if len(buf) >= 2:
                try:
                    length, at = read_varint(bytes(buf), 1)
                except IndexError:
                    length, at = -1, 0
                if length >= 0 and len(buf) >= at + length:
                    header, body = buf[0], bytes(buf[at:at + length])
                    del buf[:at + length]
                    return header, body
            chunk = conn.recv(65536)
            if not chunk:
                return None
            buf += chunk

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(20)
        buf = bytearray()
        frame = self._frame(conn, buf)
        assert frame is not None and frame[0] == 0x10, f"expected CONNECT, got {frame!r}"
        body = frame[1]
        assert body[:7] == b"\x00\x04MQTT\x05", f"not a v5 CONNECT: {body[:8]!r}"
        plen, at = read_varint(body, 10)
        props = _parse_properties(body[at:at + plen])
        at += plen
        id_len = int.from_bytes(body[at:at + 2], "big")
        client_id = body[at + 2:at + 2 + id_len].decode()
        assert props.get(0x15) == METHOD, f"method {props.get(0x15)!r}"
        self.log.append(f"CONNECT {client_id} data={props.get(0x16)!r}")
        step = 1
        conn.sendall(_packet(0xF0, b"\x18" + _auth_properties(b"challenge-%d" % step)))
        frame = self._frame(conn, buf)
        assert frame is not None, "the client closed instead of answering the challenge"
        if frame[0] == 0xE0:
            self.log.append(f"DISCONNECT {frame[1].hex()} during CONNECT")
            return
        answer = self._auth(frame)
        if answer != b"answer-%d" % step:
            conn.sendall(_packet(0x20, b"\x00\x87\x00"))
            self.log.append(f"REFUSED {client_id} answer={answer!r}")
            return
        final = b"server-forged" if client_id.startswith("forged") else b"server-ok"
        conn.sendall(_packet(0x20, b"\x00\x00" + _auth_properties(final)))
        self.log.append(f"CONNACK {client_id}")
        while (frame := self._frame(conn, buf)) is not None:
            header, body = frame
            kind = header >> 4
            if kind == 15:
                reason = body[0]
                if reason == 0x19:
                    self.log.append("REAUTH")
                    step += 1
                    conn.sendall(_packet(0xF0, b"\x18" + _auth_properties(b"challenge-%d" % step)))
                else:
                    answer = self._auth(frame)
                    assert answer == b"answer-%d" % step, f"re-authentication answer {answer!r}"
                    conn.sendall(_packet(0xF0, b"\x00" + _auth_properties(None)))
                    self.log.append("REAUTHENTICATED")
            elif kind == 3:
                qos = (header >> 1) & 3
                tlen = int.from_bytes(body[:2], "big")
                if qos:
                    conn.sendall(_packet(0x40 if qos == 1 else 0x50, body[2 + tlen:4 + tlen]))
                self.log.append(f"PUBLISH {body[2:2 + tlen].decode()}")
            elif kind == 6:
                conn.sendall(_packet(0x70, body[:2]))
            elif kind == 12:
                conn.sendall(b"\xd0\x00")
            elif kind == 14:
                self.log.append("DISCONNECT")
                return

    @staticmethod
    def _auth(frame: tuple[int, bytes]) -> bytes | None:
        header, body = frame
        assert header == 0xF0, f"expected AUTH, got {header:#04x}"
        assert body[0] == 0x18, f"AUTH reason {body[0]:#04x}"
        plen, at = read_varint(body, 1)
        props = _parse_properties(body[at:at + plen])
        assert props.get(0x15) == METHOD, f"AUTH method {props.get(0x15)!r}"
        return props.get(0x16)

"""``TCPProtocol``: the design's ``TCPProtocol(ReqResProtocol)`` over libeq1's ``eq1_tcp_*``
functions: ``connect``/``disconnect``/``is_connected``, ``send(data) -> bool`` and
``receive(buffer_size) -> bytes`` (the raw stream, or one message in a framed mode), plus
``request(data, timeout)`` (send, then receive one message as the answer) and ``stats()``.

Framing (``TCPConfig.framing``): ``"raw"`` (no framing: a receive returns what has arrived),
``"u16"`` / ``"u32"`` (each message preceded by its big-endian length) or ``"delimiter"``
(each message ends with ``TCPConfig.delimiter``).

Automatic reconnect (``TCPConfig.auto_reconnect``): before sending, a connection the server
closed or reset while idle is reopened (with backoff, within the call's timeout), and a
``request`` whose connection broke before any byte of its answer arrived is sent once more on
a new connection. That is at-least-once delivery: a server that had processed the first copy
before the cut receives the request twice. ``send`` and ``receive`` are never repeated.

Failures raise the binding's exceptions with the library's status: ``ProtocolConnectionError``
(refused, TLS, ``TIMEOUT``, ``CONNECTION_LOST``, ``NOT_CONNECTED``), ``ProtocolValidationError``
(arguments, ``PAYLOAD_TOO_LARGE``, ``TLS_CONFIG``), ``ProtocolDecodeError``
(``FRAME_TOO_LARGE``: the server sent a frame above ``max_frame``). Thread-safe: requests from
several threads take turns."""

from __future__ import annotations

import ctypes
import dataclasses
import threading
from dataclasses import dataclass, fields
from typing import Any, Optional, Union

from communicator import _native
from communicator.common.exceptions import ProtocolError, ProtocolValidationError, Status
from communicator.interfaces.protocol import ReqResProtocol
from communicator.protocols.connection_events import ConnectionEventsMixin

#: Framing names and their eq1.h constants (EQ1_TCP_FRAMING_*).
FRAMINGS = {"raw": 0, "u16": 1, "u32": 2, "delimiter": 3}
#: The largest maximum frame the library accepts (256 MiB).
LARGEST_MAX_FRAME = 256 * 1024 * 1024
# Receive buffer tried first by request(); a larger answer is fetched with max_frame.
_FIRST_BUFFER = 64 * 1024
_MAX_MS = 2**31 - 1


@dataclass
class TCPConfig:
    """Where the server is, how messages are framed, TLS and reconnection."""

    host: str = "127.0.0.1"
    port: int = 0
    #: Seconds that connecting (DNS, TCP, TLS handshake), and each reconnect, may take.
    connect_timeout: float = 10.0
    #: Default seconds of send, receive and request.
    timeout: float = 10.0
    #: "raw", "u16", "u32" or "delimiter".
    framing: str = "raw"
    #: The end of each message with framing "delimiter".
    delimiter: bytes = b"\n"
    #: The largest message in either direction (framed modes), and the most bytes one raw
    #: receive returns; 1..256 MiB.
    max_frame: int = 16 * 1024 * 1024
    #: TLS on; ca_certs None trusts the system's CA store.
    tls: bool = False
    #: PEM file of trusted CAs; setting it turns TLS on.
    ca_certs: Optional[str] = None
    tls_verify_hostname: bool = True
    #: Client certificate chain and key (PEM files); keyfile_password for an encrypted key.
    certfile: Optional[str] = None
    keyfile: Optional[str] = None
    keyfile_password: Optional[str] = None
    auto_reconnect: bool = False
    #: Backoff of reconnect attempts, seconds (exponential, with jitter).
    reconnect_min_delay: float = 0.1
    reconnect_max_delay: float = 5.0


@dataclass
class TCPStats:
    """Counters since the client was made (``eq1_tcp_stats``)."""

    requests: int = 0
    failures: int = 0
    timeouts: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    reconnects: int = 0
    #: Requests sent again on a new connection (automatic reconnect).
    retries: int = 0


def _ms(seconds: float, what: str) -> int:
    if seconds < 0:
        raise ProtocolValidationError(f"{what} {seconds} s is negative")
    return min(int(seconds * 1000), _MAX_MS)


class TCPProtocol(ConnectionEventsMixin, ReqResProtocol):
    """A TCP request/response client. ``on_connection_event`` receives CONNECTED, LOST,
    RECONNECTED (automatic reconnect) and DISCONNECTED on the client's dispatcher thread.

    ``TCPProtocol(TCPConfig(host=..., port=...))``, or as the design shows it
    ``TCPProtocol("host", port)``; keyword arguments set ``TCPConfig`` fields
    (``TCPProtocol("h", 7, framing="u16")``)."""

    _EVENT_SETTER = "eq1_tcp_client_set_connection_callback"
    _FREE = "eq1_tcp_client_free"

    def __init__(self, config: Union[TCPConfig, str, None] = None, port: Optional[int] = None,
                 **config_fields: Any) -> None:
        if isinstance(config, str):
            config_fields["host"] = config
            config = None
        if port is not None:
            config_fields["port"] = port
        try:
            self.config = dataclasses.replace(config or TCPConfig(), **config_fields)
        except TypeError as e:
            raise ProtocolValidationError(f"TCPConfig: {e}") from None
        self._lib = _native.load()
        self._buffers = threading.local()
        self._client: Optional[int] = None
        options = self._lib.eq1_tcp_options_new()
        if not options:
            raise ProtocolError("cannot create TCP options")
        try:
            self._configure(options)
            handle = ctypes.c_void_p()
            _native.check(self._lib.eq1_tcp_client_new(options, ctypes.byref(handle)),
                          "TCP client")
            self._client = handle.value
        finally:
            self._lib.eq1_tcp_options_free(options)

    def _configure(self, options: int) -> None:
        c, lib = self.config, self._lib
        if not isinstance(c.port, int) or not 0 < c.port < 65536:
            raise ProtocolValidationError(f"port {c.port!r} is outside 1..65535")
        if c.framing not in FRAMINGS:
            raise ProtocolValidationError(
                f"framing {c.framing!r} is not one of {', '.join(FRAMINGS)}")
        _native.check(lib.eq1_tcp_options_set_endpoint(options, c.host.encode(), c.port),
                      "host/port")
        _native.check(lib.eq1_tcp_options_set_connect_timeout(
            options, max(_ms(c.connect_timeout, "connect_timeout"), 1)), "connect_timeout")
        delimiter = bytes(c.delimiter)
        _native.check(lib.eq1_tcp_options_set_framing(
            options, FRAMINGS[c.framing], delimiter, len(delimiter)), "framing")
        _native.check(lib.eq1_tcp_options_set_max_frame(options, c.max_frame), "max_frame")
        _native.check(lib.eq1_tcp_options_set_auto_reconnect(
            options, c.auto_reconnect, _ms(c.reconnect_min_delay, "reconnect_min_delay"),
            _ms(c.reconnect_max_delay, "reconnect_max_delay")), "reconnect delays")
        if c.tls or c.ca_certs is not None or c.certfile is not None:
            ca = c.ca_certs.encode() if c.ca_certs is not None else None
            _native.check(lib.eq1_tcp_options_set_tls(options, ca, c.tls_verify_hostname),
                          "TLS")
        if c.certfile is not None or c.keyfile is not None:
            if c.certfile is None or c.keyfile is None:
                raise ProtocolValidationError("a client certificate needs certfile and keyfile")
            password = c.keyfile_password.encode() if c.keyfile_password is not None else None
            _native.check(lib.eq1_tcp_options_set_tls_client_cert(
                options, c.certfile.encode(), c.keyfile.encode(), password),
                "client certificate")

    # ------------------------------------------------------------ BaseProtocol

    def connect(self) -> bool:
        """Connects within ``connect_timeout``; True when connected (failures raise)."""
        _native.check(self._lib.eq1_tcp_client_connect(
            self._handle(), max(_ms(self.config.connect_timeout, "connect_timeout"), 1)),
            "connect")
        return True

    def disconnect(self) -> None:
        """Closes the connection; automatic reconnect stops until the next connect()."""
        if self._client:
            _native.check(self._lib.eq1_tcp_client_disconnect(self._client), "disconnect")

    @property
    def is_connected(self) -> bool:
        """True while connected, as far as the client knows (a loss is seen by the next call)."""
        return bool(self._client) and bool(self._lib.eq1_tcp_client_is_connected(self._client))

    def close(self) -> None:
        """Disconnects and frees the native client (also done when garbage collected)."""
        client, self._client = self._client, None
        if client:
            self._free_native(client)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - never raise from a finalizer
            pass

    # ------------------------------------------------------------ ReqResProtocol

    def send(self, data: bytes, timeout: Optional[float] = None) -> bool:
        """Sends one message (framed per the config) within ``timeout`` seconds (default: the
        config's); True when all of it was written (failures raise)."""
        payload = bytes(data)
        _native.check(self._lib.eq1_tcp_client_send(
            self._handle(), payload, len(payload), self._timeout_ms(timeout)), "send")
        return True

    def receive(self, buffer_size: int = 1024, timeout: Optional[float] = None) -> bytes:
        """Raw: what has arrived, up to ``buffer_size`` bytes. Framed: one message; one larger
        than ``buffer_size`` raises ProtocolValidationError (PAYLOAD_TOO_LARGE, its size in the
        detail) and is kept for the next receive. Waits up to ``timeout`` seconds (default: the
        config's); nothing in time raises ProtocolConnectionError (TIMEOUT)."""
        if buffer_size <= 0:
            raise ProtocolValidationError(f"buffer_size {buffer_size} is not positive")
        buffer = self._buffer(buffer_size)
        got = ctypes.c_size_t()
        _native.check(self._lib.eq1_tcp_client_receive(
            self._handle(), self._timeout_ms(timeout), buffer, buffer_size, ctypes.byref(got)),
            "receive")
        return buffer.raw[:got.value]

    def request(self, data: bytes, timeout: Optional[float] = None,
                buffer_size: Optional[int] = None) -> bytes:
        """Sends ``data`` and returns one message as its answer (raw: what has arrived, up to
        ``buffer_size``), all within ``timeout`` seconds (default: the config's). A timed-out
        request closes the connection. ``buffer_size`` None: any answer up to ``max_frame``."""
        payload = bytes(data)
        size = buffer_size if buffer_size is not None else min(_FIRST_BUFFER,
                                                                self.config.max_frame)
        if size <= 0:
            raise ProtocolValidationError(f"buffer_size {size} is not positive")
        timeout_ms = self._timeout_ms(timeout)
        buffer = self._buffer(size)
        got = ctypes.c_size_t()
        status = self._lib.eq1_tcp_client_request(self._handle(), payload, len(payload),
                                                  timeout_ms, buffer, size, ctypes.byref(got))
        if (status == Status.PAYLOAD_TOO_LARGE and buffer_size is None
                and self.config.framing != "raw" and self._sendable(payload)):
            # The answer is larger than the first buffer: the library keeps it for a receive.
            return self.receive(self.config.max_frame, timeout)
        _native.check(status, "request")
        return buffer.raw[:got.value]

    def stats(self) -> TCPStats:
        raw = _native.Eq1TcpStats()
        _native.check(self._lib.eq1_tcp_client_get_stats(self._handle(), ctypes.byref(raw)),
                      "stats")
        return TCPStats(**{f.name: int(getattr(raw, f.name)) for f in fields(TCPStats)})

    # ------------------------------------------------------------ plumbing

    def _handle(self) -> int:
        if not self._client:
            raise ProtocolValidationError("the TCP client is closed")
        return self._client

    def _timeout_ms(self, timeout: Optional[float]) -> int:
        return _ms(self.config.timeout if timeout is None else timeout, "timeout")

    def _sendable(self, payload: bytes) -> bool:
        """Whether the library accepted ``payload`` for sending (so PAYLOAD_TOO_LARGE came from
        the answer, not from the request)."""
        limit = 0xFFFF if self.config.framing == "u16" else self.config.max_frame
        return len(payload) <= min(limit, self.config.max_frame)

    def _buffer(self, size: int) -> "ctypes.Array[ctypes.c_char]":
        """This thread's receive buffer, at least ``size`` bytes (reused between calls)."""
        buffer: Optional[ctypes.Array[ctypes.c_char]] = getattr(self._buffers, "buffer", None)
        if buffer is None or len(buffer) < size:
            buffer = ctypes.create_string_buffer(size)
            self._buffers.buffer = buffer
        return buffer

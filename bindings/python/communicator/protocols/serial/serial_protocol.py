"""``SerialProtocol``: raw bytes over a serial line (an RS-232/485 adapter, a pseudo-terminal)
through libeq1's ``eq1_serial_*`` functions, as the design's ``ReqResProtocol``: ``send(data)``
writes every byte, ``receive(buffer_size)`` returns what has arrived (up to ``buffer_size``
bytes), waiting up to the read timeout for the first byte, and ``request`` does both.

A receive that times out raises ``ProtocolConnectionError`` with ``status == Status.TIMEOUT``;
a device that cannot be opened ``ProtocolConnectionError`` with ``Status.SERIAL_ERROR``; a bad
setting ``ProtocolValidationError`` (``Status.INVALID_ARGUMENT``). Calls from several threads
take turns on the line."""

from __future__ import annotations

import ctypes
from dataclasses import dataclass, fields
from typing import Optional

from communicator import _native
from communicator.common.exceptions import ProtocolValidationError
from communicator.interfaces.protocol import ReqResProtocol
from communicator.protocols.connection_events import ConnectionEventsMixin

#: Parity names (and their one-letter forms) -> ``EQ1_SERIAL_PARITY_*``.
PARITIES = {"none": 0, "n": 0, "odd": 1, "o": 1, "even": 2, "e": 2}
#: Flow control names -> ``EQ1_SERIAL_FLOW_*``.
FLOW_CONTROLS = {"none": 0, "software": 1, "xonxoff": 1, "hardware": 2, "rtscts": 2}
#: The largest receive this binding asks for at once.
MAX_RECEIVE = 1 << 20


@dataclass
class SerialConfig:
    """The device and its line settings (8N1 at 9600 baud, no flow control by default)."""

    device: str = ""
    baud: int = 9600
    data_bits: int = 8
    parity: str = "none"
    stop_bits: int = 1
    flow_control: str = "none"
    #: How long ``receive`` / ``request`` wait for the first byte, unless the call says.
    read_timeout_ms: int = 1000


@dataclass
class SerialStats:
    requests: int = 0
    failures: int = 0
    timeouts: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0


def _choice(table: dict[str, int], value: object, what: str) -> int:
    if isinstance(value, str) and value.lower() in table:
        return table[value.lower()]
    raise ProtocolValidationError(
        f"{what} {value!r} is not one of {', '.join(sorted(set(table)))}")


class SerialProtocol(ConnectionEventsMixin, ReqResProtocol):
    """A serial port. Not opened until ``connect``. ``on_connection_event`` receives CONNECTED,
    LOST (a read or write failed: the port is closed) and DISCONNECTED on the client's
    dispatcher thread."""

    _EVENT_SETTER = "eq1_serial_client_set_connection_callback"
    _FREE = "eq1_serial_client_free"

    def __init__(self, config: Optional[SerialConfig] = None, **settings: object) -> None:
        """``SerialProtocol(SerialConfig(device="/dev/ttyUSB0", baud=115200))``, or the same
        fields as keywords: ``SerialProtocol(device="/dev/ttyUSB0", baud=115200)``."""
        if config is None:
            config = SerialConfig(**settings)  # type: ignore[arg-type]
        elif settings:
            raise ProtocolValidationError("give a SerialConfig or keywords, not both")
        self.config = config
        self._lib = _native.load()
        self._client: Optional[int] = None
        c = config
        # The library checks every value (its status and detail); only what ctypes cannot
        # carry is refused here.
        if not isinstance(c.device, str):
            raise ProtocolValidationError(f"device {c.device!r} is not a str")
        for name in ("baud", "data_bits", "stop_bits"):
            value = getattr(c, name)
            limit = 2**32 if name == "baud" else 2**31
            if isinstance(value, bool) or not isinstance(value, int) or not (
                    -2**31 <= value < limit):
                raise ProtocolValidationError(f"{name} {value!r} is not an integer in range")
        if c.baud < 0:
            raise ProtocolValidationError(f"baud {c.baud} is negative")
        parity = _choice(PARITIES, c.parity, "parity")
        flow = _choice(FLOW_CONTROLS, c.flow_control, "flow control")
        self._timeout_ms(c.read_timeout_ms)
        options = ctypes.c_void_p()
        _native.check(self._lib.eq1_serial_options_new(c.device.encode(), c.baud,
                                                       ctypes.byref(options)), "serial")
        try:
            _native.check(self._lib.eq1_serial_options_set_line(
                options, c.data_bits, parity, c.stop_bits), "line settings")
            _native.check(self._lib.eq1_serial_options_set_flow_control(options, flow),
                          "flow control")
            handle = ctypes.c_void_p()
            _native.check(self._lib.eq1_serial_client_new(options, ctypes.byref(handle)),
                          "serial client")
            self._client = handle.value
        finally:
            self._lib.eq1_serial_options_free(options)
        self._connected = False

    # ------------------------------------------------------------ BaseProtocol

    def connect(self) -> bool:
        """Opens and configures the device."""
        _native.check(self._lib.eq1_serial_client_connect(self._handle()),
                      f"open {self.config.device}")
        self._connected = True
        return True

    def disconnect(self) -> None:
        if self._client:
            _native.check(self._lib.eq1_serial_client_disconnect(self._client), "disconnect")
        self._connected = False

    @property
    def is_connected(self) -> bool:
        return self._connected

    def close(self) -> None:
        """Closes the device and frees the native client (also done when garbage collected)."""
        client, self._client = self._client, None
        if client:
            self._free_native(client)
        self._connected = False

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: nothing left to report to
            pass

    # ------------------------------------------------------------ ReqResProtocol

    def send(self, data: bytes) -> bool:
        """Writes every byte of ``data``; True when written."""
        payload = bytes(data)
        _native.check(self._lib.eq1_serial_client_send(self._handle(), payload, len(payload)),
                      "send")
        return True

    def receive(self, buffer_size: int = 1024, timeout_ms: Optional[int] = None) -> bytes:
        """What has arrived, at most ``buffer_size`` bytes, waiting up to ``timeout_ms`` (the
        config's ``read_timeout_ms`` when None) for the first; raises on a timeout."""
        buf, got = self._buffer(buffer_size)
        _native.check(self._lib.eq1_serial_client_receive(
            self._handle(), self._timeout_ms(timeout_ms), buf, len(buf), ctypes.byref(got)),
            "receive")
        return buf.raw[:got.value]

    def request(self, data: bytes, buffer_size: int = 1024,
                timeout_ms: Optional[int] = None) -> bytes:
        """Sends ``data`` and returns the first answer (what arrived, up to ``buffer_size``
        bytes); requests from several threads take turns."""
        payload = bytes(data)
        buf, got = self._buffer(buffer_size)
        _native.check(self._lib.eq1_serial_client_request(
            self._handle(), payload, len(payload), self._timeout_ms(timeout_ms), buf, len(buf),
            ctypes.byref(got)), "request")
        return buf.raw[:got.value]

    def stats(self) -> SerialStats:
        raw = _native.Eq1SerialStats()
        _native.check(self._lib.eq1_serial_client_get_stats(self._handle(), ctypes.byref(raw)),
                      "stats")
        return SerialStats(**{f.name: int(getattr(raw, f.name)) for f in fields(SerialStats)})

    # ------------------------------------------------------------ plumbing

    def _handle(self) -> int:
        if not self._client:
            raise ProtocolValidationError("the serial client is closed")
        return self._client

    def _timeout_ms(self, timeout_ms: Optional[int]) -> int:
        value = self.config.read_timeout_ms if timeout_ms is None else timeout_ms
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**31:
            raise ProtocolValidationError(f"timeout {value!r} ms is not 0..2147483647")
        return value

    @staticmethod
    def _buffer(buffer_size: int) -> tuple["ctypes.Array[ctypes.c_char]", ctypes.c_size_t]:
        if isinstance(buffer_size, bool) or not isinstance(buffer_size, int) or not (
                0 < buffer_size <= MAX_RECEIVE):
            raise ProtocolValidationError(f"buffer_size {buffer_size!r} is not 1..{MAX_RECEIVE}")
        return ctypes.create_string_buffer(buffer_size), ctypes.c_size_t(0)

    def __repr__(self) -> str:
        return (f"<SerialProtocol {self.config.device} {self.config.baud} baud"
                f"{' open' if self._connected else ''}>")

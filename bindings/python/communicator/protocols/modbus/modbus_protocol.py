"""``ModbusProtocol``: a Modbus client (TCP, or RTU over a serial line) over libeq1's
``eq1_modbus_*`` functions. Typed helpers (``read_holding_registers`` ...) raise the
binding's exceptions (an exception response is a ``ProtocolValidationError`` or
``ProtocolConnectionError`` whose ``status`` is one of ``Status.MODBUS_*``). ``send`` /
``receive`` are the design's ``ReqResProtocol`` face: ``send`` takes a request PDU (function
code + data) and ``receive`` returns the response PDU.

Calls from several threads: over TCP the library pipelines them on one connection (up to
``max_in_flight`` requests at once, matched to their responses by transaction id; the default 1
serializes, since many servers cannot pipeline); over RTU one request is on the line at a time."""

from __future__ import annotations

import ctypes
import struct
import threading
from dataclasses import dataclass, fields
from typing import Callable, Optional, Sequence

from communicator import _native
from communicator.common.exceptions import ProtocolValidationError
from communicator.interfaces.protocol import ReqResProtocol
from communicator.protocols.connection_events import ConnectionEventsMixin

PARITIES = {"N": 0, "O": 1, "E": 2}
DEFAULT_UNIT = -1


@dataclass
class ModbusConfig:
    """Where the server is and the defaults of each call. ``serial_device`` set: RTU."""

    host: str = "127.0.0.1"
    port: int = 502
    unit_id: int = 1
    timeout_ms: int = 1000
    retries: int = 1
    #: Modbus TCP: requests on the connection at once (1..256); 1 for devices that cannot
    #: pipeline.
    max_in_flight: int = 1
    serial_device: Optional[str] = None
    baud: int = 19200
    data_bits: int = 8
    parity: str = "N"
    stop_bits: int = 1


@dataclass
class ModbusStats:
    requests: int = 0
    failures: int = 0
    timeouts: int = 0
    bad_frames: int = 0
    exceptions: int = 0
    retries: int = 0
    connects: int = 0
    bytes_out: int = 0
    bytes_in: int = 0
    late_responses: int = 0


def _call_options(timeout_ms: Optional[int], retries: Optional[int]) -> Optional[
        _native.Eq1ModbusCallOptions]:
    if timeout_ms is None and retries is None:
        return None
    return _native.Eq1ModbusCallOptions(
        -1 if timeout_ms is None else timeout_ms, -1 if retries is None else retries)


def _ref(options: Optional[_native.Eq1ModbusCallOptions]) -> object:
    return ctypes.byref(options) if options is not None else None


class ModbusProtocol(ConnectionEventsMixin, ReqResProtocol):
    """A Modbus client. ``unit=None`` in a call uses the configured ``unit_id``.
    ``on_connection_event`` receives CONNECTED, LOST (server gone, protocol violation; RTU:
    any failed attempt), RECONNECTED (a later call opened a new connection) and DISCONNECTED
    on the client's dispatcher thread."""

    _EVENT_SETTER = "eq1_modbus_client_set_connection_callback"
    _FREE = "eq1_modbus_client_free"

    def __init__(self, config: Optional[ModbusConfig] = None) -> None:
        self.config = config or ModbusConfig()
        self._lib = _native.load()
        self._lock = threading.Lock()
        self._pending: list[bytes] = []
        options = self._lib.eq1_modbus_options_new()
        if not options:
            raise ProtocolValidationError("cannot create Modbus options")
        try:
            c = self.config
            if c.serial_device is not None:
                if c.parity not in PARITIES:
                    raise ProtocolValidationError(f"parity {c.parity!r} is not N, O or E")
                _native.check(self._lib.eq1_modbus_options_set_serial(
                    options, c.serial_device.encode(), c.baud, c.data_bits, PARITIES[c.parity],
                    c.stop_bits), "serial")
            else:
                _native.check(self._lib.eq1_modbus_options_set_tcp(
                    options, c.host.encode(), c.port), "host/port")
            _native.check(self._lib.eq1_modbus_options_set_unit_id(options, c.unit_id),
                          "unit_id")
            _native.check(self._lib.eq1_modbus_options_set_timeout(options, c.timeout_ms),
                          "timeout_ms")
            _native.check(self._lib.eq1_modbus_options_set_retries(options, c.retries),
                          "retries")
            _native.check(self._lib.eq1_modbus_options_set_max_in_flight(
                options, c.max_in_flight), "max_in_flight")
            handle = ctypes.c_void_p()
            _native.check(self._lib.eq1_modbus_client_new(options, ctypes.byref(handle)),
                          "client")
            self._client: Optional[int] = handle.value
        finally:
            self._lib.eq1_modbus_options_free(options)
        self._connected = False

    # ------------------------------------------------------------ BaseProtocol

    def connect(self) -> bool:
        _native.check(self._lib.eq1_modbus_client_connect(self._handle()), "connect")
        self._connected = True
        return True

    def disconnect(self) -> None:
        if self._client:
            _native.check(self._lib.eq1_modbus_client_disconnect(self._client), "disconnect")
        self._connected = False

    @property
    def is_connected(self) -> bool:
        return self._connected

    def close(self) -> None:
        """Disconnects and frees the native client (also done when garbage collected)."""
        client, self._client = self._client, None
        if client:
            self._free_native(client)
        self._connected = False

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: nothing left to report to
            pass

    def _handle(self) -> int:
        if not self._client:
            raise ProtocolValidationError("the Modbus client is closed")
        return self._client

    @staticmethod
    def _unit(unit: Optional[int]) -> int:
        return DEFAULT_UNIT if unit is None else unit

    # ------------------------------------------------------------ typed helpers

    def read_coils(self, address: int, count: int, unit: Optional[int] = None,
                   timeout_ms: Optional[int] = None,
                   retries: Optional[int] = None) -> list[bool]:
        return self._read_bits(self._lib.eq1_modbus_read_coils, "read_coils", address, count,
                               unit, timeout_ms, retries)

    def read_discrete_inputs(self, address: int, count: int, unit: Optional[int] = None,
                             timeout_ms: Optional[int] = None,
                             retries: Optional[int] = None) -> list[bool]:
        return self._read_bits(self._lib.eq1_modbus_read_discrete_inputs,
                               "read_discrete_inputs", address, count, unit, timeout_ms,
                               retries)

    def read_holding_registers(self, address: int, count: int, unit: Optional[int] = None,
                               timeout_ms: Optional[int] = None,
                               retries: Optional[int] = None) -> list[int]:
        return self._read_words(self._lib.eq1_modbus_read_holding_registers,
                                "read_holding_registers", address, count, unit, timeout_ms,
                                retries)

    def read_input_registers(self, address: int, count: int, unit: Optional[int] = None,
                             timeout_ms: Optional[int] = None,
                             retries: Optional[int] = None) -> list[int]:
        return self._read_words(self._lib.eq1_modbus_read_input_registers,
                                "read_input_registers", address, count, unit, timeout_ms,
                                retries)

    def write_single_coil(self, address: int, value: bool, unit: Optional[int] = None,
                          timeout_ms: Optional[int] = None,
                          retries: Optional[int] = None) -> None:
        _native.check(self._lib.eq1_modbus_write_single_coil(
            self._handle(), self._unit(unit), address, 1 if value else 0,
            _ref(_call_options(timeout_ms, retries))), "write_single_coil")

    def write_single_register(self, address: int, value: int, unit: Optional[int] = None,
                              timeout_ms: Optional[int] = None,
                              retries: Optional[int] = None) -> None:
        if not 0 <= value <= 0xFFFF:
            raise ProtocolValidationError(f"register value {value} is outside 0..65535")
        _native.check(self._lib.eq1_modbus_write_single_register(
            self._handle(), self._unit(unit), address, value,
            _ref(_call_options(timeout_ms, retries))), "write_single_register")

    def write_multiple_coils(self, address: int, values: Sequence[bool],
                             unit: Optional[int] = None, timeout_ms: Optional[int] = None,
                             retries: Optional[int] = None) -> None:
        array = (ctypes.c_uint8 * max(len(values), 1))(*[1 if v else 0 for v in values])
        _native.check(self._lib.eq1_modbus_write_multiple_coils(
            self._handle(), self._unit(unit), address, array, len(values),
            _ref(_call_options(timeout_ms, retries))), "write_multiple_coils")

    def write_multiple_registers(self, address: int, values: Sequence[int],
                                 unit: Optional[int] = None, timeout_ms: Optional[int] = None,
                                 retries: Optional[int] = None) -> None:
        array = self._words(values)
        _native.check(self._lib.eq1_modbus_write_multiple_registers(
            self._handle(), self._unit(unit), address, array, len(values),
            _ref(_call_options(timeout_ms, retries))), "write_multiple_registers")

    def read_write_multiple_registers(self, read_address: int, read_count: int,
                                      write_address: int, values: Sequence[int],
                                      unit: Optional[int] = None,
                                      timeout_ms: Optional[int] = None,
                                      retries: Optional[int] = None) -> list[int]:
        array = self._words(values)
        out = (ctypes.c_uint16 * max(read_count, 1))()
        _native.check(self._lib.eq1_modbus_read_write_multiple_registers(
            self._handle(), self._unit(unit), read_address, read_count, write_address, array,
            len(values), out, max(read_count, 0), _ref(_call_options(timeout_ms, retries))),
            "read_write_multiple_registers")
        return list(out[:read_count])

    def stats(self) -> ModbusStats:
        raw = _native.Eq1ModbusStats()
        _native.check(self._lib.eq1_modbus_client_get_stats(self._handle(), ctypes.byref(raw)),
                      "stats")
        return ModbusStats(**{f.name: int(getattr(raw, f.name)) for f in fields(ModbusStats)})

    # ------------------------------------------------------------ ReqResProtocol

    def send(self, data: bytes) -> bool:
        """Sends one request PDU (function code + data, big endian as on the wire) for the
        function codes 0x01-0x06, 0x0F, 0x10, 0x17 to the default unit; its response PDU is
        kept for ``receive``. Raises like the typed helpers."""
        response = self._request_pdu(bytes(data))
        with self._lock:
            self._pending.append(response)
        return True

    def receive(self, buffer_size: int = 1024) -> bytes:
        """The response PDU of the oldest ``send`` not yet received (at most ``buffer_size``
        bytes of it); b"" when there is none."""
        with self._lock:
            if not self._pending:
                return b""
            return self._pending.pop(0)[:buffer_size]

    def _request_pdu(self, pdu: bytes) -> bytes:
        if len(pdu) < 5:
            raise ProtocolValidationError(f"a request PDU of {len(pdu)} byte(s) is too short")
        function = pdu[0]
        address, second = struct.unpack(">HH", pdu[1:5])
        if function in (1, 2):
            read = self.read_coils if function == 1 else self.read_discrete_inputs
            bits = read(address, second)
            packed = bytearray((len(bits) + 7) // 8)
            for i, bit in enumerate(bits):
                if bit:
                    packed[i // 8] |= 1 << (i % 8)
            return bytes([function, len(packed)]) + bytes(packed)
        if function in (3, 4):
            read_words = (self.read_holding_registers if function == 3
                          else self.read_input_registers)
            words = read_words(address, second)
            return bytes([function, 2 * len(words)]) + struct.pack(f">{len(words)}H", *words)
        if function == 5:
            self.write_single_coil(address, second == 0xFF00)
            return pdu[:5]
        if function == 6:
            self.write_single_register(address, second)
            return pdu[:5]
        if function == 15:
            bits = [bool(pdu[6 + i // 8] >> (i % 8) & 1) for i in range(second)]
            self.write_multiple_coils(address, bits)
            return pdu[:5]
        if function == 16:
            words = list(struct.unpack(f">{second}H", pdu[6:6 + 2 * second]))
            self.write_multiple_registers(address, words)
            return pdu[:5]
        if function == 23:
            write_address, write_count = struct.unpack(">HH", pdu[5:9])
            words = list(struct.unpack(f">{write_count}H", pdu[10:10 + 2 * write_count]))
            got = self.read_write_multiple_registers(address, second, write_address, words)
            return bytes([function, 2 * len(got)]) + struct.pack(f">{len(got)}H", *got)
        raise ProtocolValidationError(f"function code 0x{function:02X} is not supported")

    # ------------------------------------------------------------ plumbing

    def _read_bits(self, fn: Callable[..., int], what: str, address: int, count: int,
                   unit: Optional[int], timeout_ms: Optional[int],
                   retries: Optional[int]) -> list[bool]:
        out = (ctypes.c_uint8 * max(count, 1))()
        _native.check(fn(self._handle(), self._unit(unit), address, count, out, max(count, 0),
                         _ref(_call_options(timeout_ms, retries))), what)
        return [bool(b) for b in out[:count]]

    def _read_words(self, fn: Callable[..., int], what: str, address: int, count: int,
                    unit: Optional[int], timeout_ms: Optional[int],
                    retries: Optional[int]) -> list[int]:
        out = (ctypes.c_uint16 * max(count, 1))()
        _native.check(fn(self._handle(), self._unit(unit), address, count, out, max(count, 0),
                         _ref(_call_options(timeout_ms, retries))), what)
        return list(out[:count])

    @staticmethod
    def _words(values: Sequence[int]) -> "ctypes.Array[ctypes.c_uint16]":
        for v in values:
            if not 0 <= v <= 0xFFFF:
                raise ProtocolValidationError(f"register value {v} is outside 0..65535")
        return (ctypes.c_uint16 * max(len(values), 1))(*values)

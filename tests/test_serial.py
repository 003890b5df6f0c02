"""Serial lines over a socat (Debian) pseudo-terminal pair started by each test: bytes in both
directions (all 256 byte values, a 64 KiB block), requests answered from the other end, read
timeouts, a device that does not exist and every invalid line setting, from the C test
program tests/c/eq1serial.c (also under valgrind) and from Python's SerialProtocol."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import pytest

from harness import cprog
from harness.serial_pty import PtyPair

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO / "tests" / "c" / "eq1serial.c"


@pytest.fixture
def pair(tmp_path):
    line = PtyPair(tmp_path, "line")
    yield line
    line.stop()



@pytest.mark.parametrize("valgrind", [False, pytest.param(True, marks=pytest.mark.valgrind)],
                         ids=["plain", "valgrind"])
@pytest.mark.timeout(300)
def test_c_api_over_a_pty_pair(built_library, pair, valgrind):
    program = cprog.compile_c([SOURCE], extra_flags=("-lpthread",))
    r = cprog.run(program, [pair.a, pair.b], timeout=280, valgrind=valgrind)
    cprog.assert_all_passed(r)
    for check in ("A -> B: B receives all 256 byte values, unchanged",
                  "B -> A: A receives all 256 byte values, unchanged",
                  "a 64 KiB block arrives whole and unchanged",
                  "20 requests each get their echo from the other end",
                  "receive with nothing arriving times out -> EQ1_STATUS_TIMEOUT",
                  "a device that does not exist -> EQ1_STATUS_SERIAL_ERROR",
                  "parity 3 -> EQ1_STATUS_INVALID_ARGUMENT",
                  "registry: the other end receives the bytes"):
        assert f"ok   - {check}" in r.stdout, r.stdout
    if valgrind:
        cprog.assert_valgrind_clean(r)


# ---------------------------------------------------------------- Python

@pytest.fixture
def serial(built_library):
    os.environ["EQ1_LIBRARY"] = str(Path(built_library) / "libeq1.so")
    bindings = str(REPO / "bindings" / "python")
    if bindings not in sys.path:
        sys.path.insert(0, bindings)
    from communicator.protocols.serial import SerialConfig, SerialProtocol

    made = []

    def make(device: str, **fields) -> SerialProtocol:
        port = SerialProtocol(SerialConfig(device=device, **fields))
        made.append(port)
        return port

    yield make
    for port in made:
        port.close()


def read_exactly(port, n: int) -> bytes:
    data = b""
    while len(data) < n:
        data += port.receive(n - len(data), timeout_ms=5000)
    return data


def test_python_bytes_both_ways_and_a_64k_block(serial, pair):
    a = serial(pair.a, baud=115200)
    b = serial(pair.b, baud=115200, parity="N", flow_control="none")
    assert a.connect() and b.connect() and a.is_connected
    every_byte = bytes(range(256))
    assert a.send(every_byte)
    assert read_exactly(b, 256) == every_byte
    assert b.send(every_byte[::-1])
    assert read_exactly(a, 256) == every_byte[::-1]

    block = bytes((i * 13 + i // 256) & 0xFF for i in range(64 * 1024))
    writer = threading.Thread(target=a.send, args=(block,))
    writer.start()
    received = read_exactly(b, len(block))
    writer.join(30)
    assert received == block
    stats = a.stats()
    assert stats.bytes_sent == 256 + len(block) and stats.bytes_received == 256


def test_python_request_is_answered_from_the_other_end(serial, pair):
    a, b = serial(pair.a), serial(pair.b)
    a.connect()
    b.connect()

    def answer(count: int) -> None:
        for _ in range(count):
            question = b.receive(64, timeout_ms=5000)
            b.send(b"re:" + question)

    responder = threading.Thread(target=answer, args=(5,))
    responder.start()
    answers = [a.request(f"q{i}".encode(), timeout_ms=5000) for i in range(5)]
    responder.join(30)
    assert answers == [f"re:q{i}".encode() for i in range(5)]
    assert a.stats().requests == 5


def test_python_read_timeouts_raise_with_the_timeout_status(serial, pair):
    from communicator.common.exceptions import ProtocolConnectionError, Status

    a = serial(pair.a, read_timeout_ms=200)
    a.connect()
    start = time.monotonic()
    with pytest.raises(ProtocolConnectionError) as raised:
        a.receive()
    assert raised.value.status == Status.TIMEOUT and "nothing received" in str(raised.value)
    assert time.monotonic() - start >= 0.19  # it waited for the configured timeout
    with pytest.raises(ProtocolConnectionError) as raised:
        a.request(b"anyone?", timeout_ms=100)
    assert raised.value.status == Status.TIMEOUT
    stats = a.stats()
    assert stats.requests == 1 and stats.timeouts == 1 and stats.failures == 1


def test_python_a_device_that_does_not_exist(serial, tmp_path):
    from communicator.common.exceptions import ProtocolConnectionError, ProtocolValidationError
    from communicator.common.exceptions import Status

    port = serial(str(tmp_path / "no-such-tty"))
    with pytest.raises(ProtocolConnectionError) as raised:
        port.connect()
    assert raised.value.status == Status.SERIAL_ERROR and "no-such-tty" in str(raised.value)
    assert not port.is_connected
    with pytest.raises(ProtocolConnectionError) as raised:
        port.send(b"x")
    assert raised.value.status == Status.NOT_CONNECTED
    port.close()
    with pytest.raises(ProtocolValidationError):
        port.send(b"x")


@pytest.mark.parametrize("field, value, needle", [
    ("device", "", "empty"),
    ("baud", 0, "baud rate is 0"),
    ("baud", 2**32, "baud"),
    ("data_bits", 4, "data bits 4"),
    ("data_bits", 9, "data bits 9"),
    ("stop_bits", 0, "stop bits 0"),
    ("stop_bits", 3, "stop bits 3"),
    ("parity", "mark", "parity 'mark'"),
    ("flow_control", "dtr", "flow control 'dtr'"),
    ("read_timeout_ms", -1, "timeout -1"),
])
def test_python_every_invalid_line_setting_is_refused_with_its_status(serial, pair, field,
                                                                        value, needle):
    from communicator.common.exceptions import ProtocolValidationError, Status

    settings = {"device": pair.a, field: value}
    with pytest.raises(ProtocolValidationError) as raised:
        serial(**settings)
    assert raised.value.status == Status.INVALID_ARGUMENT
    assert needle in str(raised.value)


def test_python_bad_buffer_sizes_and_timeouts_per_call(serial, pair):
    from communicator.common.exceptions import ProtocolValidationError

    a = serial(pair.a)
    a.connect()
    for size in (0, -1, 2**21):
        with pytest.raises(ProtocolValidationError):
            a.receive(size)
    with pytest.raises(ProtocolValidationError):
        a.receive(16, timeout_ms=-5)


def test_python_every_line_format_opens_the_pty(serial, pair):
    for data_bits, parity, stop_bits, flow in ((7, "even", 2, "software"), (8, "odd", 1, "none"),
                                               (5, "E", 1, "hardware"), (6, "none", 2, "none")):
        port = serial(pair.a, baud=19200, data_bits=data_bits, parity=parity,
                      stop_bits=stop_bits, flow_control=flow)
        assert port.connect()
        port.close()

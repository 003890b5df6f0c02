"""Modbus TCP against pymodbus's server (PyPI), started by each test as its own process with
harness.modbus_server's register map: every function code from C, bad input at the C
boundary (under valgrind), 4 threads x 1,000 requests, requests pipelined by transaction id
(seen on the wire by harness.modbus_relay), a late response discarded, a bad MBAP header
closing the connection, the server killed mid-poll and back, and the Python ModbusProtocol's
typed helpers."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import pytest

from harness import cprog
from harness.modbus_relay import ModbusRelay
from harness.modbus_server import MAP_SIZE, coil, discrete, holding, input_register

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO / "tests" / "c" / "eq1modbus.c"


@pytest.fixture(scope="module")
def program(built_library):
    return cprog.compile_c([SOURCE], extra_flags=("-lpthread",))



def test_every_function_code_reads_and_writes_back_what_the_server_holds(program,
                                                                         modbus_server):
    r = cprog.run(program, ["tcp", modbus_server.host, modbus_server.port, "roundtrip"],
                  timeout=120)
    cprog.assert_all_passed(r)
    assert "0x17 read/write multiple" in r.stdout


@pytest.mark.valgrind
@pytest.mark.timeout(300)
def test_modbus_tcp_opens_by_name_from_the_protocol_registry(program, modbus_server):
    r = cprog.run(program, ["tcp", modbus_server.host, modbus_server.port, "registry"],
                  timeout=280, valgrind=True)
    cprog.assert_all_passed(r)
    cprog.assert_valgrind_clean(r)


@pytest.mark.valgrind
@pytest.mark.timeout(300)
def test_bad_input_at_the_c_boundary_has_its_status_under_valgrind(program, modbus_server):
    r = cprog.run(program, ["tcp", modbus_server.host, modbus_server.port, "bad"],
                  timeout=280, valgrind=True)
    cprog.assert_all_passed(r)
    cprog.assert_valgrind_clean(r)


@pytest.fixture
def relay(modbus_server):
    made = ModbusRelay(modbus_server.host, modbus_server.port)
    yield made
    made.close()


def threads_run(program, host, port, requests, max_in_flight):
    r = cprog.run(program, ["tcp", host, port, "threads", requests, 4, max_in_flight],
                  timeout=280)
    cprog.assert_all_passed(r)
    assert f"max in flight: {max_in_flight}" in r.stdout
    assert f"4 x {requests} requests, 0 wrong, 0 failed" in r.stdout
    # Every answer came at the first attempt: nothing waited for a timeout and a retry.
    assert "retries 0 timeouts 0 late responses 0 connects 1" in r.stdout, r.stdout[-2000:]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_4_threads_x_1000_requests_each_all_get_their_own_answer(program, relay):
    # Pipelined on the wire between client and relay (16 in flight at most); the relay hands
    # pymodbus one request at a time (harness.modbus_relay says why).
    threads_run(program, relay.host, relay.port, 1000, 16)
    assert relay.requests == 4 * 1000 + 1000 and relay.responses == relay.requests
    assert 1 < relay.max_outstanding <= 4, relay.max_outstanding


@pytest.mark.timeout(300)
def test_max_in_flight_1_serializes_requests_from_threads(program, relay):
    threads_run(program, relay.host, relay.port, 300, 1)
    assert relay.requests == 4 * 300 + 300 and relay.connections == 1
    assert relay.max_outstanding == 1


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_4_threads_serialized_against_pymodbus_directly(program, modbus_server):
    # A server that cannot take pipelined requests (pymodbus 3.8's reads one per TCP read)
    # is driven with max_in_flight 1.
    threads_run(program, modbus_server.host, modbus_server.port, 1000, 1)


@pytest.mark.timeout(60)
def test_a_late_response_after_a_timeout_is_discarded_and_the_next_request_gets_its_own(
        modbus, relay):
    from communicator.common.exceptions import ProtocolError, Status

    m = modbus(host=relay.host, port=relay.port, timeout_ms=300, retries=0)
    # The relay holds the first response for 1.5 s: it arrives while the second request
    # waits, just before that request's own response.
    relay.delay_response(0, 1.5)
    with pytest.raises(ProtocolError) as raised:
        m.read_holding_registers(0, 1)
    assert raised.value.status == Status.TIMEOUT
    assert m.read_holding_registers(10, 3, timeout_ms=5000) == [holding(i) for i in range(10, 13)]
    stats = m.stats()
    assert stats.late_responses == 1 and stats.timeouts == 1
    assert stats.connects == 1 and relay.connections == 1, "the timeout kept the connection"
    assert m.read_coils(0, 3) == [coil(i) for i in range(3)]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("field", ["transaction_id", "protocol_id"])
def test_a_response_with_an_unknown_transaction_id_or_protocol_id_closes_the_connection(
        modbus, relay, field):
    from communicator.common.exceptions import ProtocolError, Status

    # No real server sends these: the relay rewrites the first response's MBAP header.
    m = modbus(host=relay.host, port=relay.port, timeout_ms=2000, retries=0)
    relay.rewrite_response(0, field)
    with pytest.raises(ProtocolError) as raised:
        m.read_holding_registers(0, 2)
    assert raised.value.status == Status.MODBUS_BAD_FRAME
    says = "no request has" if field == "transaction_id" else "protocol id 1"
    assert says in str(raised.value)
    # The next call connects again and gets its own answer.
    assert m.read_holding_registers(0, 2) == [holding(0), holding(1)]
    assert m.stats().connects == 2 and relay.connections == 2


@pytest.fixture
def modbus(built_library):
    os.environ["EQ1_LIBRARY"] = str(Path(built_library) / "libeq1.so")
    bindings = str(REPO / "bindings" / "python")
    if bindings not in sys.path:
        sys.path.insert(0, bindings)
    from communicator.protocols.modbus import ModbusConfig, ModbusProtocol

    made = []

    def make(**fields):
        client = ModbusProtocol(ModbusConfig(**fields))
        made.append(client)
        client.connect()
        return client

    yield make
    for client in made:
        client.close()


def test_python_typed_helpers_read_and_write_what_the_server_holds(modbus, modbus_server):
    from communicator.common.exceptions import ProtocolValidationError, Status

    m = modbus(host=modbus_server.host, port=modbus_server.port, timeout_ms=2000)
    assert m.read_holding_registers(0, MAP_SIZE) == [holding(i) for i in range(MAP_SIZE)]
    assert m.read_input_registers(0, 10, unit=1) == [input_register(i) for i in range(10)]
    assert m.read_coils(0, 17) == [coil(i) for i in range(17)]
    assert m.read_discrete_inputs(5, 9) == [discrete(i) for i in range(5, 14)]
    m.write_single_register(3, 65535)
    m.write_multiple_registers(10, [1, 2, 3])
    assert m.read_holding_registers(3, 1) == [65535]
    assert m.read_holding_registers(10, 3, timeout_ms=500, retries=0) == [1, 2, 3]
    m.write_single_coil(1, True)
    m.write_multiple_coils(40, [True, False, True])
    assert m.read_coils(40, 3) == [True, False, True]
    assert m.read_coils(1, 1) == [True]
    assert m.read_write_multiple_registers(60, 2, 61, [7]) == [holding(60), 7]
    # The design's ReqResProtocol face: a request PDU in, the response PDU out.
    assert m.send(bytes([0x03, 0, 0, 0, 2]))
    assert m.receive() == bytes([0x03, 4, 0x03, 0xE8, 0x03, 0xE9])
    with pytest.raises(ProtocolValidationError) as raised:
        m.read_holding_registers(MAP_SIZE, 1)
    assert raised.value.status == Status.MODBUS_ILLEGAL_DATA_ADDRESS
    with pytest.raises(ProtocolValidationError) as raised:
        m.read_holding_registers(0, 126)
    assert raised.value.status == Status.INVALID_ARGUMENT and "1..125" in str(raised.value)
    stats = m.stats()
    assert stats.exceptions == 1 and stats.requests == 15 and stats.bytes_in > 0


@pytest.mark.slow
def test_server_killed_mid_poll_gives_its_status_and_the_client_reconnects(modbus,
                                                                           modbus_server):
    from communicator.common.exceptions import ProtocolConnectionError, Status

    m = modbus(host=modbus_server.host, port=modbus_server.port, timeout_ms=500, retries=0)
    statuses: list[int] = []
    stop = threading.Event()
    killed = threading.Event()
    first_after_kill: list[int] = []
    recovered = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            try:
                assert m.read_holding_registers(0, 4) == [holding(i) for i in range(4)]
                if killed.is_set() and statuses:
                    recovered.set()
            except ProtocolConnectionError as e:
                assert e.status is not None
                statuses.append(e.status)
                if killed.is_set() and not first_after_kill:
                    first_after_kill.append(e.status)
            stop.wait(0.02)

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        assert m.read_holding_registers(0, 1) == [holding(0)]
        killed.set()
        modbus_server.stop()
        deadline = threading.Event()
        for _ in range(200):
            if statuses:
                break
            deadline.wait(0.05)
        assert statuses, "no failure reported while the server was down"
        assert set(statuses) <= {Status.CONNECTION_LOST, Status.CONNECTION_REFUSED,
                                 Status.TIMEOUT, Status.NETWORK_ERROR}
        modbus_server.start()
        assert recovered.wait(60), f"no success after the server came back: {statuses[-5:]}"
    finally:
        stop.set()
        poller.join(30)
    assert m.stats().connects >= 2

"""``on_connection_event`` of TCPProtocol, ModbusProtocol and SerialProtocol
(communicator.protocols.connection_events over eq1_*_client_set_connection_callback) against
real peers: the echo server resets the TCP connection and automatic reconnect reopens it;
pymodbus's server is killed and started again; a socat pty pair is opened and closed. Events
arrive in order on one thread that is not the caller's, and ``close()`` from inside the
callback frees the client (on another thread) without deadlock."""

from __future__ import annotations

import queue
import threading
import time

import pytest


def _collect(client):
    """Installs a callback that records (kind, status, message, thread id)."""
    got: "queue.Queue[tuple]" = queue.Queue()
    client.on_connection_event = lambda e: got.put((e.kind, e.status, e.message, e.error,
                                                    threading.get_ident()))
    return got


def _take(got, n, timeout=20.0):
    deadline = time.monotonic() + timeout
    events = []
    while len(events) < n and time.monotonic() < deadline:
        try:
            events.append(got.get(timeout=0.1))
        except queue.Empty:
            pass
    return events


def test_tcp_connected_lost_reconnected_disconnected_on_the_dispatcher_thread(eq1_library,
                                                                             echo_server):
    from communicator.common.exceptions import ProtocolConnectionError, Status
    from communicator.protocols.connection_events import ConnectionEventKind as K
    from communicator.protocols.tcp import TCPConfig, TCPProtocol

    client = TCPProtocol(TCPConfig(host=echo_server.host, port=echo_server.port,
                                   framing="u16", timeout=5.0, auto_reconnect=True,
                                   reconnect_min_delay=0.05, reconnect_max_delay=0.5))
    try:
        got = _collect(client)
        client.connect()
        assert client.request(b"before") == b"before"
        assert client.request(b"!reset") == b"!reset"
        time.sleep(0.3)  # idle: the RST arrives meanwhile
        assert client.request(b"after") == b"after"
        client.disconnect()
        events = _take(got, 4)
    finally:
        client.close()
    assert [e[0] for e in events] == [K.CONNECTED, K.LOST, K.RECONNECTED, K.DISCONNECTED]
    kind, status, message, error, _ = events[1]
    assert status == Status.CONNECTION_LOST and message
    assert isinstance(error, ProtocolConnectionError) and error.status == Status.CONNECTION_LOST
    assert events[0][1] == Status.OK and events[0][3] is None
    threads = {e[4] for e in events}
    assert len(threads) == 1 and threading.get_ident() not in threads


def test_modbus_server_killed_is_lost_and_back_is_reconnected(eq1_library, modbus_server):
    from communicator.common.exceptions import ProtocolConnectionError, Status
    from communicator.protocols.connection_events import ConnectionEventKind as K
    from communicator.protocols.modbus import ModbusConfig, ModbusProtocol

    client = ModbusProtocol(ModbusConfig(host=modbus_server.host, port=modbus_server.port,
                                         timeout_ms=1000, retries=0))
    try:
        got = _collect(client)
        client.connect()
        assert client.read_holding_registers(0, 2) == [1000, 1001]
        assert _take(got, 1)[0][0] == K.CONNECTED
        modbus_server.stop()
        lost = _take(got, 1)
        assert lost and lost[0][0] == K.LOST and lost[0][1] == Status.CONNECTION_LOST, lost
        modbus_server.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                assert client.read_holding_registers(0, 2) == [1000, 1001]
                break
            except ProtocolConnectionError:
                time.sleep(0.1)
        assert _take(got, 1)[0][0] == K.RECONNECTED
        client.disconnect()
        assert _take(got, 1)[0][0] == K.DISCONNECTED
    finally:
        client.close()


def test_close_from_inside_the_callback_frees_the_client(eq1_library, echo_server):
    from communicator.protocols.tcp import TCPConfig, TCPProtocol

    client = TCPProtocol(TCPConfig(host=echo_server.host, port=echo_server.port,
                                   framing="u16", timeout=5.0))
    closed = threading.Event()

    def close_inside(event) -> None:
        client.close()
        closed.set()

    client.on_connection_event = close_inside
    client.connect()
    assert closed.wait(20), "the callback never ran or close() deadlocked"
    assert client._client is None


def test_serial_open_and_close_are_events(eq1_library, tmp_path):
    from harness.serial_pty import PtyPair

    from communicator.protocols.connection_events import ConnectionEventKind as K
    from communicator.protocols.serial import SerialProtocol

    pair = PtyPair(tmp_path, "ev")
    try:
        port = SerialProtocol(device=pair.a, baud=115200)
        got = _collect(port)
        port.connect()
        port.disconnect()
        events = _take(got, 2)
        port.close()
    finally:
        pair.stop()
    assert [e[0] for e in events] == [K.CONNECTED, K.DISCONNECTED]


def test_a_callback_that_is_not_callable_is_refused(eq1_library, echo_server):
    from communicator.common.exceptions import ProtocolValidationError
    from communicator.protocols.tcp import TCPProtocol

    client = TCPProtocol(echo_server.host, echo_server.port)
    try:
        with pytest.raises(ProtocolValidationError):
            client.on_connection_event = 42  # type: ignore[assignment]
    finally:
        client.close()

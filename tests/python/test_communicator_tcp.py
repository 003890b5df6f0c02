"""communicator.protocols.tcp.TCPProtocol (the design's TCPProtocol(ReqResProtocol) over
eq1_tcp_*) against the echo/framing server of harness.tcp_echo_server, a real socketserver in
its own process: every framing mode round-trips 10,000 checked messages; a connection the
server closed or reset while the client was idle is reopened by the next request (with
automatic reconnect) or reported (without); a request whose connection broke before its answer
is sent again once (and the server sees it twice), one whose answer had begun is not; the
server killed and restarted on the same port; TLS with the test PKI and a wrong CA; timeouts,
frame limits and configuration errors as the binding's exceptions."""

from __future__ import annotations

import threading
import time

import pytest

FRAMINGS = ["raw", "u16", "u32", "delimiter"]


@pytest.fixture
def tcp(eq1_library):
    """tcp(server, **TCPConfig fields) -> connected TCPProtocol; closed at teardown."""
    from communicator.protocols.tcp import TCPConfig, TCPProtocol

    made = []

    def make(server, connect=True, **fields):
        fields.setdefault("framing", server.framing)
        fields.setdefault("delimiter", server.delimiter)
        fields.setdefault("timeout", 5.0)
        fields.setdefault("reconnect_min_delay", 0.05)
        fields.setdefault("reconnect_max_delay", 0.5)
        client = TCPProtocol(TCPConfig(host=server.host, port=server.port, **fields))
        made.append(client)
        if connect:
            assert client.connect() is True
        return client

    yield make
    for client in made:
        client.close()


def message(i: int) -> bytes:
    """Message i: 1..300 letters (never a delimiter), different for every i."""
    length = 1 + (i * 7919) % 300
    return bytes(97 + (i * 31 + k * 17 + (k * k) % 7) % 26 for k in range(length))


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("framing", FRAMINGS)
def test_each_framing_round_trips_10000_checked_messages(tcp, echo_server_factory, framing):
    server = echo_server_factory(framing=framing, delimiter=b"\r\n")
    client = tcp(server)
    wrong = []
    for i in range(10_000):
        sent = message(i)
        if framing == "raw":
            assert client.send(sent) is True
            got = b""
            while len(got) < len(sent):
                got += client.receive(len(sent) - len(got))
        else:
            got = client.request(sent)
        if got != sent:
            wrong.append(i)
    assert wrong == []
    stats = client.stats()
    assert stats.requests == (0 if framing == "raw" else 10_000)
    assert stats.failures == 0 and stats.reconnects == 0 and stats.retries == 0


@pytest.mark.parametrize("how", ["close", "reset"])
def test_a_connection_cut_while_idle_is_reopened_before_the_next_request(tcp, echo_server,
                                                                        how):
    client = tcp(echo_server, auto_reconnect=True)
    assert client.request(b"before") == b"before"
    mark = echo_server.mark()
    assert client.request(f"!{how}".encode()) == f"!{how}".encode()
    echo_server.wait_for(f"closed {how}", since=mark)  # the client is idle meanwhile
    assert client.request(b"after") == b"after"
    assert client.request(b"again") == b"again"
    stats = client.stats()
    # Reopened before sending (not a retry): the loss was seen on the idle connection.
    assert (stats.reconnects, stats.retries, stats.failures) == (1, 0, 0)
    assert echo_server.count("accepted") == 2


@pytest.mark.parametrize("how", ["close", "reset"])
def test_without_auto_reconnect_the_next_request_reports_the_cut(tcp, echo_server, how):
    from communicator.common.exceptions import ProtocolConnectionError, Status

    client = tcp(echo_server)
    mark = echo_server.mark()
    assert client.request(f"!{how}".encode()) == f"!{how}".encode()
    echo_server.wait_for(f"closed {how}", since=mark)
    with pytest.raises(ProtocolConnectionError) as lost:
        client.request(b"after")
    assert lost.value.status == Status.CONNECTION_LOST and "idle" in lost.value.detail
    assert not client.is_connected
    with pytest.raises(ProtocolConnectionError) as later:
        client.request(b"after")
    assert later.value.status == Status.NOT_CONNECTED
    assert client.connect() and client.request(b"by hand") == b"by hand"


def test_raw_send_reconnects_before_sending_after_an_idle_cut(tcp, echo_server):
    client = tcp(echo_server, auto_reconnect=True)
    mark = echo_server.mark()
    assert client.send(b"!close")
    assert client.receive(64) == b"!close"
    echo_server.wait_for("closed close", since=mark)
    assert client.send(b"on the new connection")
    assert client.receive(64) == b"on the new connection"
    assert client.stats().reconnects == 1


def test_a_request_cut_before_its_answer_is_sent_again_once(tcp, echo_server):
    client = tcp(echo_server, auto_reconnect=True)
    assert client.request(b"!drop-once:r1") == b"!drop-once:r1"
    # At least once: the server received the request on both connections.
    echo_server.wait_for("seen r1 2")
    assert echo_server.count("seen r1 1") == 1
    stats = client.stats()
    assert (stats.retries, stats.reconnects, stats.failures) == (1, 1, 0)


def test_without_auto_reconnect_a_request_cut_before_its_answer_fails(tcp, echo_server):
    from communicator.common.exceptions import ProtocolConnectionError, Status

    client = tcp(echo_server)
    with pytest.raises(ProtocolConnectionError) as lost:
        client.request(b"!drop-once:r2")
    assert lost.value.status == Status.CONNECTION_LOST
    echo_server.wait_for("closed r2")
    assert echo_server.count("seen r2 1") == 1 and echo_server.count("seen r2 2") == 0
    assert client.stats().retries == 0


def test_a_request_whose_answer_had_begun_is_not_sent_again(tcp, echo_server):
    from communicator.common.exceptions import ProtocolConnectionError, Status

    client = tcp(echo_server, auto_reconnect=True)
    with pytest.raises(ProtocolConnectionError) as lost:
        client.request(b"!partial")
    assert lost.value.status == Status.CONNECTION_LOST
    assert client.stats().retries == 0
    assert client.request(b"next") == b"next"  # and the next request reconnects
    echo_server.wait_for("seen partial 1")
    assert echo_server.count("seen partial 2") == 0


@pytest.mark.timeout(120)
def test_server_killed_and_restarted_on_the_same_port_the_client_reconnects(tcp, echo_server):
    client = tcp(echo_server, auto_reconnect=True)
    assert client.request(b"one") == b"one"
    echo_server.kill()
    echo_server.start()
    assert client.request(b"two") == b"two"
    assert client.stats().reconnects == 1

    # A request made while the server is down retries with backoff within its timeout.
    echo_server.kill()
    answer: list[bytes] = []
    failure: list[BaseException] = []

    def request() -> None:
        try:
            answer.append(client.request(b"three", timeout=30))
        except BaseException as e:  # noqa: BLE001 - reported by the assertion below
            failure.append(e)

    worker = threading.Thread(target=request)
    worker.start()
    time.sleep(0.5)  # the request is now retrying against the closed port
    echo_server.start()
    worker.join(60)
    assert not worker.is_alive() and failure == [] and answer == [b"three"]
    assert client.stats().reconnects == 2


def test_tls_with_the_test_pki_and_a_client_certificate(tcp, echo_server_factory, pki):
    server = echo_server_factory(tls=(pki.server_crt, pki.server_key, pki.ca_crt))
    client = tcp(server, ca_certs=pki.ca_crt, certfile=pki.client_crt, keyfile=pki.client_key)
    for i in range(200):
        assert client.request(message(i)) == message(i)


def test_tls_with_the_wrong_ca_is_refused(tcp, echo_server_factory, pki):
    from communicator.common.exceptions import ProtocolConnectionError, Status

    server = echo_server_factory(tls=(pki.server_crt, pki.server_key))
    client = tcp(server, connect=False, ca_certs=pki.other_ca_crt)
    with pytest.raises(ProtocolConnectionError) as refused:
        client.connect()
    assert refused.value.status == Status.TLS_UNKNOWN_ISSUER
    assert not client.is_connected


def test_timeouts_and_frame_limits_raise_with_their_statuses(tcp, echo_server):
    from communicator.common.exceptions import (ProtocolConnectionError, ProtocolDecodeError,
                                                ProtocolValidationError, Status)

    client = tcp(echo_server, max_frame=100)
    with pytest.raises(ProtocolConnectionError) as timed_out:
        client.receive(100, timeout=0.2)
    assert timed_out.value.status == Status.TIMEOUT
    assert client.request(b"x" * 100) == b"x" * 100
    with pytest.raises(ProtocolValidationError) as too_large:
        client.send(b"x" * 101)
    assert too_large.value.status == Status.PAYLOAD_TOO_LARGE
    with pytest.raises(ProtocolDecodeError) as frame:
        client.request(b"!big:101")
    assert frame.value.status == Status.FRAME_TOO_LARGE and "101" in frame.value.detail
    stats = client.stats()
    assert (stats.requests, stats.failures, stats.timeouts) == (2, 1, 0)


def test_an_answer_larger_than_the_first_buffer_is_received_whole(tcp, echo_server_factory):
    server = echo_server_factory(framing="u32")
    client = tcp(server)
    assert client.request(b"!big:300000") == b"x" * 300_000
    from communicator.common.exceptions import ProtocolValidationError, Status

    with pytest.raises(ProtocolValidationError) as small:
        client.request(b"!big:20", buffer_size=10)
    assert small.value.status == Status.PAYLOAD_TOO_LARGE
    assert client.receive(20) == b"x" * 20  # kept for the next receive


def test_the_designs_constructor_and_interfaces(eq1_library, echo_server_factory):
    from communicator.interfaces.protocol import BaseProtocol, ReqResProtocol
    from communicator.protocols.tcp import TCPProtocol

    server = echo_server_factory(framing="raw")
    client = TCPProtocol(server.host, server.port)
    assert isinstance(client, ReqResProtocol) and isinstance(client, BaseProtocol)
    assert not client.is_connected
    with client:
        assert client.is_connected
        assert client.send(b"ping") is True
        assert client.receive(1024) == b"ping"
    assert not client.is_connected
    client.close()


def test_bad_configuration_raises_validation_errors(eq1_library):
    from communicator.common.exceptions import ProtocolValidationError, Status
    from communicator.protocols.tcp import TCPConfig, TCPProtocol

    for fields, status in [({"port": 0}, None), ({"port": 1, "framing": "bogus"}, None),
                           ({"port": 1, "max_frame": 0}, Status.INVALID_ARGUMENT),
                           ({"port": 1, "framing": "delimiter", "delimiter": b""},
                            Status.INVALID_ARGUMENT),
                           ({"port": 1, "ca_certs": "/nonexistent/ca.pem"}, Status.TLS_CONFIG),
                           ({"port": 1, "reconnect_min_delay": 2, "reconnect_max_delay": 1},
                            Status.INVALID_ARGUMENT)]:
        with pytest.raises(ProtocolValidationError) as bad:
            TCPProtocol(TCPConfig(host="127.0.0.1", **fields))
        if status is not None:
            assert bad.value.status == status, fields
    with pytest.raises(ProtocolValidationError):
        TCPProtocol("127.0.0.1", 1, no_such_field=True)
    client = TCPProtocol("127.0.0.1", 1)
    client.close()
    with pytest.raises(ProtocolValidationError):
        client.send(b"closed")

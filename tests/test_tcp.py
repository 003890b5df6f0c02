"""TCP request/response (eq1_tcp_*) from C (tests/c/eq1tcp.c) against a real echo/framing
server each test starts in its own process (harness.tcp_echo_server, Python's socketserver):
every framing mode round-trips 10,000 checked messages (and fewer under valgrind), a
connection the server closed or reset while the client was idle is reopened by the next
request (and reported without automatic reconnect), TLS with the test PKI (also a client
certificate, and a wrong CA refused), timeouts and frame limits, and every NULL or invalid
argument at the C boundary with its status. The Python binding's tests are in
tests/python/test_communicator_tcp.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import cprog

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO / "tests" / "c" / "eq1tcp.c"
FRAMINGS = ["raw", "u16", "u32", "delimiter"]


@pytest.fixture(scope="module")
def program(built_library):
    return cprog.compile_c([SOURCE])


def run(program, server, *args, valgrind=False, timeout=240):
    r = cprog.run(program, [server.host, server.port, *args], timeout=timeout,
                  valgrind=valgrind)
    assert r.returncode == 0 and "SUMMARY:" in r.stdout and ", 0 failed" in r.stdout, (
        f"exit {r.returncode}\n{r.stdout[-8000:]}\n{r.stderr[-4000:]}")
    if valgrind:
        cprog.assert_valgrind_clean(r)
    return r


@pytest.mark.slow
@pytest.mark.parametrize("framing", FRAMINGS)
def test_each_framing_round_trips_10000_checked_messages(program, echo_server_factory,
                                                         framing):
    server = echo_server_factory(framing=framing, delimiter=b"\r\n")
    r = run(program, server, "roundtrip", framing, 10_000)
    assert f"{framing}: 10000 messages, 0 wrong, 0 failed" in r.stdout


@pytest.mark.valgrind
@pytest.mark.timeout(600)
@pytest.mark.parametrize("framing", FRAMINGS)
def test_each_framing_round_trips_under_valgrind(program, echo_server_factory, framing):
    server = echo_server_factory(framing=framing, delimiter=b"\r\n")
    r = run(program, server, "roundtrip", framing, 300, valgrind=True, timeout=580)
    assert f"{framing}: 300 messages, 0 wrong, 0 failed" in r.stdout


@pytest.mark.parametrize("how", ["close", "reset"])
def test_a_connection_cut_while_idle_is_reopened_by_the_next_request(program, echo_server,
                                                                    how):
    r = run(program, echo_server, "idle-cut", 1, how)
    assert "reconnects 1 " in r.stdout
    assert echo_server.count(f"closed {how}") == 1 and echo_server.count("accepted") == 2


@pytest.mark.parametrize("how", ["close", "reset"])
def test_without_auto_reconnect_a_cut_while_idle_fails_the_next_request(program, echo_server,
                                                                       how):
    r = run(program, echo_server, "idle-cut", 0, how)
    assert "CONNECTION_LOST" in r.stdout and "NOT_CONNECTED" in r.stdout


@pytest.mark.valgrind
@pytest.mark.timeout(600)
def test_idle_cut_and_reconnect_are_clean_under_valgrind(program, echo_server):
    run(program, echo_server, "idle-cut", 1, "reset", valgrind=True, timeout=580)


def test_tls_with_the_test_pki_round_trips(program, echo_server_factory, pki):
    server = echo_server_factory(tls=(pki.server_crt, pki.server_key))
    r = run(program, server, "tls", pki.ca_crt, "-", "-", 1000)
    assert "tls: 1000 messages, 0 wrong" in r.stdout


def test_tls_with_a_client_certificate_the_server_requires(program, echo_server_factory, pki):
    server = echo_server_factory(tls=(pki.server_crt, pki.server_key, pki.ca_crt))
    r = run(program, server, "tls", pki.ca_crt, pki.client_crt, pki.client_key, 200)
    assert "tls: 200 messages, 0 wrong" in r.stdout


def test_tls_with_the_wrong_ca_is_refused_as_unknown_issuer(program, echo_server_factory, pki):
    server = echo_server_factory(tls=(pki.server_crt, pki.server_key))
    run(program, server, "tls-wrong-ca", pki.other_ca_crt)
    assert server.count("accepted") == 0


@pytest.mark.valgrind
@pytest.mark.timeout(600)
def test_tls_is_clean_under_valgrind(program, echo_server_factory, pki):
    server = echo_server_factory(tls=(pki.server_crt, pki.server_key))
    run(program, server, "tls", pki.ca_crt, "-", "-", 50, valgrind=True, timeout=580)


def test_receive_timeout_and_frame_limits_have_their_statuses(program, echo_server):
    r = run(program, echo_server, "limits")
    for status in ("TIMEOUT", "PAYLOAD_TOO_LARGE", "FRAME_TOO_LARGE"):
        assert f"EQ1_STATUS_{status}" in r.stdout


@pytest.mark.valgrind
@pytest.mark.timeout(600)
def test_null_and_invalid_arguments_have_their_statuses_under_valgrind(program, echo_server):
    r = run(program, echo_server, "bad", valgrind=True, timeout=580)
    assert r.stdout.count("ok   - ") >= 40


def test_cpp_tcp_client_round_trips_and_throws_each_family(built_library, echo_server):
    from harness.ports import free_port

    exe = cprog.compile_cxx([REPO / "tests" / "cpp" / "tcp_client.cpp"],
                            extra_flags=("-I", str(REPO / "bindings" / "cpp")))
    r = cprog.run(exe, [echo_server.host, echo_server.port, free_port()], timeout=120)
    assert r.returncode == 0 and "SUMMARY:" in r.stdout and ", 0 failed" in r.stdout, (
        f"exit {r.returncode}\n{r.stdout[-8000:]}\n{r.stderr[-4000:]}")
    assert "a connection closed while idle is reopened by the next request" in r.stdout

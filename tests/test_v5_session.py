"""MQTT 5.0 session features against a real mosquitto (issue 8): acknowledgement reason codes
(an ACL-denied publish reported with 0x87 in the delivery report and `wait_report`), CONNACK
information and the broker-assigned client identifier, retained-message expiry, and the
outbox's own message expiry (EQ1_STATUS_EXPIRED, remaining interval sent), and a client
DISCONNECT with reason 0x04 that makes mosquitto publish the will, the CONNACK copy of
eq1_mqtt_client_get_connack and the broker limits mosquitto can announce (Maximum QoS, Retain
Available, Maximum Packet Size), and server redirection by CONNACK 0x9C (from a scripted front,
since mosquitto never sends it) to a mosquitto. The C program is tests/c/eq1v5.c; each mode
runs plain and under valgrind."""

from __future__ import annotations

import socket
import threading

import pytest

from harness import cprog

VALGRIND = [pytest.param(False, id="plain"), pytest.param(True, id="valgrind")]


@pytest.fixture(scope="module")
def eq1v5(built_library):
    return cprog.compile_c([cprog.repo_root() / "tests/c/eq1v5.c"], extra_flags=("-lpthread",))


def run(exe, mode, broker, valgrind):
    r = cprog.run(exe, [mode, broker.host, broker.port], timeout=180, valgrind=valgrind)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUMMARY 0 failures" in r.stdout, r.stdout
    if valgrind:
        cprog.assert_valgrind_clean(r)
    return r


@pytest.mark.parametrize("valgrind", VALGRIND)
def test_acl_denied_publish_is_a_failed_delivery_with_reason_0x87(eq1v5, broker_factory,
                                                                   tmp_path, valgrind):
    acl = tmp_path / "acl"
    # Lines before any "user" apply to anonymous clients: they may write only allowed/#.
    acl.write_text("topic readwrite allowed/#\n")
    broker = broker_factory(extra_conf=f"acl_file {acl}")
    run(eq1v5, "acl", broker, valgrind)


@pytest.mark.parametrize("valgrind", VALGRIND)
def test_empty_client_id_is_assigned_by_the_broker_and_connack_reaches_the_application(
        eq1v5, broker_factory, valgrind):
    broker = broker_factory(max_inflight_messages=7)
    r = run(eq1v5, "connack", broker, valgrind)
    assigned = [l.split()[1] for l in r.stdout.splitlines() if l.startswith("ASSIGNED ")]
    assert assigned and assigned[0].startswith("auto-"), r.stdout
    # The broker saw the client under the identifier it assigned.
    broker.wait_for_log(assigned[0])


# Limits other than the receive maximum, announced in CONNACK by mosquitto's own settings.
LIMITS = "max_qos 1\nretain_available false\nmax_packet_size 2000\nmax_keepalive 20"


@pytest.mark.parametrize("valgrind", VALGRIND)
def test_get_connack_copies_the_assigned_id_and_limits_valid_after_the_client_is_freed(
        eq1v5, broker_factory, valgrind):
    broker = broker_factory(max_inflight_messages=7, extra_conf=LIMITS)
    r = run(eq1v5, "connack-get", broker, valgrind)
    assigned = [l.split()[1] for l in r.stdout.splitlines() if l.startswith("ASSIGNED ")]
    assert assigned and assigned[0].startswith("auto-"), r.stdout
    broker.wait_for_log(assigned[0])


@pytest.mark.parametrize("valgrind", VALGRIND)
def test_broker_maximum_qos_retain_available_and_maximum_packet_size_refuse_publishes_before_sending(
        eq1v5, broker_factory, valgrind):
    broker = broker_factory(max_inflight_messages=7, extra_conf=LIMITS)
    run(eq1v5, "limits", broker, valgrind)
    # The program saw its marker come back, so the broker logged everything before it: the
    # refused publishes never reached the broker, the marker did.
    broker.wait_for_log("'limits/marker'")
    log = broker.log_text()
    for refused in ("limits/qos2", "limits/retained", "limits/big"):
        assert refused not in log, refused


@pytest.mark.parametrize("valgrind", VALGRIND)
def test_expired_retained_message_is_not_delivered_to_a_late_subscriber(eq1v5, broker,
                                                                          valgrind):
    run(eq1v5, "retained", broker, valgrind)


@pytest.mark.parametrize("valgrind", VALGRIND)
def test_outbox_message_expires_with_status_expired_and_the_rest_goes_with_its_remaining_interval(
        eq1v5, broker, valgrind):
    run(eq1v5, "outbox", broker, valgrind)


@pytest.mark.parametrize("valgrind", VALGRIND)
def test_disconnect_with_reason_0x04_makes_the_broker_publish_the_will(eq1v5, broker,
                                                                       valgrind):
    run(eq1v5, "will", broker, valgrind)


@pytest.mark.parametrize("valgrind", VALGRIND)
def test_new_functions_check_their_arguments(eq1v5, broker, valgrind):
    run(eq1v5, "bad-input", broker, valgrind)


class RedirectingFront:
    """A SCRIPTED SOCKET standing in for a broker (mosquitto never sends CONNACK 0x9C): it
    answers every CONNECT with CONNACK 0x9C "use another server" and the Server Reference
    `reference`, then waits for the client to close."""

    def __init__(self, reference: str):
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(4)
        self.listener.settimeout(120)
        self.port = self.listener.getsockname()[1]
        self.connects = 0
        ref = reference.encode()
        props = bytes([0x1C]) + len(ref).to_bytes(2, "big") + ref
        body = bytes([0x00, 0x9C, len(props)]) + props
        self.connack = bytes([0x20, len(body)]) + body
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(120)
            try:
                if conn.recv(4096)[:1] == b"\x10":  # CONNECT (small: read whole)
                    self.connects += 1
                conn.sendall(self.connack)
                conn.recv(4096)  # until the client closes
            except OSError:
                pass

    def close(self) -> None:
        self.listener.close()
        self.thread.join(10)


def run_redirected(eq1v5, mode, broker, valgrind):
    """Runs eq1v5 `mode` against a front whose CONNACK 0x9C references `broker`."""
    front = RedirectingFront(f"127.0.0.1:{broker.port}")
    try:
        r = cprog.run(eq1v5, [mode, "127.0.0.1", front.port, broker.port], timeout=180,
                      valgrind=valgrind)
        assert r.returncode == 0 and "SUMMARY 0 failures" in r.stdout, r.stdout + r.stderr
        if valgrind:
            cprog.assert_valgrind_clean(r)
    finally:
        front.close()
    assert front.connects == 1


@pytest.mark.parametrize("valgrind", VALGRIND)
def test_connack_0x9c_moves_a_c_client_to_the_referenced_mosquitto_when_following_redirects(
        eq1v5, broker, valgrind):
    run_redirected(eq1v5, "redirect-follow", broker, valgrind)
    broker.wait_for_log("redirect-follow")


@pytest.mark.parametrize("valgrind", VALGRIND)
def test_connack_0x9c_fails_a_c_client_with_server_moved_and_it_stays_when_not_following(
        eq1v5, broker, valgrind):
    run_redirected(eq1v5, "redirect-stay", broker, valgrind)
    # The program has exited: it never reached the referenced broker.
    assert "redirect-stay" not in broker.log_text()

"""MQTT 5.0 session features against a real mosquitto (issue 8): acknowledgement reason codes
(an ACL-denied publish reported with 0x87 in the delivery report and `wait_report`), CONNACK
information and the broker-assigned client identifier, retained-message expiry, and the
outbox's own message expiry (EQ1_STATUS_EXPIRED, remaining interval sent), and a client
DISCONNECT with reason 0x04 that makes mosquitto publish the will. The C program is
tests/c/eq1v5.c; each mode runs plain and under valgrind."""

from __future__ import annotations

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

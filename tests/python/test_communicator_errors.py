"""Each exception class raised from a real cause: a dead port, an unknown host, a wrong
password, a rejected client certificate, an invalid topic, a broker's ACL, a malformed packet...
and each carries the library's status and detail message."""

from __future__ import annotations

import pytest

from communicator_testutil import FakeBroker, wait_until
from harness.ports import free_port

from communicator import (
    ProtocolAuthenticationError,
    ProtocolConnectionError,
    ProtocolDecodeError,
    ProtocolValidationError,
    Status,
)

VERSIONS = [pytest.param(4, id="v311"), pytest.param(5, id="v5")]
CONNACK_OK = b"\x20\x02\x00\x00"


# ---------------------------------------------------------------- ProtocolConnectionError

def test_unknown_host_is_a_connection_error(make_client):
    mqtt = make_client(broker_address="no-such-host.invalid", port=1884)
    with pytest.raises(ProtocolConnectionError) as info:
        mqtt.connect()
    assert info.value.status == Status.DNS_FAILED
    assert "no-such-host.invalid" in info.value.detail


def test_refused_port_is_a_connection_error(make_client):
    port = free_port()
    mqtt = make_client(broker_address="127.0.0.1", port=port)
    with pytest.raises(ProtocolConnectionError) as info:
        mqtt.connect()
    assert info.value.status == Status.CONNECTION_REFUSED
    assert str(port) in info.value.detail


def test_silent_broker_is_a_connection_timeout(make_client, proxy):
    proxy.blackhole(True)
    mqtt = make_client(broker_address="127.0.0.1", port=proxy.port, timeout=1)
    with pytest.raises(ProtocolConnectionError) as info:
        mqtt.connect()
    assert info.value.status == Status.TIMEOUT


@pytest.mark.parametrize("cert,status", [
    ("wrong_host", Status.TLS_HOSTNAME_MISMATCH),
    ("expired", Status.TLS_CERT_EXPIRED),
])
def test_bad_server_certificates_are_connection_errors(make_client, tls_broker_factory, pki,
                                                       cert, status):
    b = tls_broker_factory(cert=getattr(pki, f"{cert}_crt"), key=getattr(pki, f"{cert}_key"))
    mqtt = make_client(broker_address="localhost", port=b.port, ca_certs=pki.ca_crt,
                       username="mqtt_user", password="secure_password")
    with pytest.raises(ProtocolConnectionError) as info:
        mqtt.connect()
    assert info.value.status == status


def test_untrusted_broker_is_a_connection_error(make_client, tls_broker, pki):
    mqtt = make_client(broker_address="localhost", port=tls_broker.port,
                       ca_certs=pki.other_ca_crt, username="mqtt_user",
                       password="secure_password")
    with pytest.raises(ProtocolConnectionError) as info:
        mqtt.connect()
    assert info.value.status == Status.TLS_UNKNOWN_ISSUER


def test_publish_and_subscribe_before_connect_are_connection_errors(make_client, broker):
    mqtt = make_client(broker)
    with pytest.raises(ProtocolConnectionError) as info:
        mqtt.publish("a/b", "x")
    assert info.value.status == Status.NOT_CONNECTED
    with pytest.raises(ProtocolConnectionError) as info:
        mqtt.subscribe("a/b", lambda t, p: None)
    assert info.value.status == Status.NOT_CONNECTED
    assert mqtt.subscriptions == {}


def test_unacknowledged_publish_fails_with_disconnected(make_client, proxy):
    failures = {}
    mqtt = make_client(broker_address="127.0.0.1", port=proxy.port)
    mqtt.on_delivery = lambda token, error: failures.__setitem__(token, error)
    mqtt.connect()
    proxy.blackhole(True)
    token = mqtt.publish_async("lost", "x", qos=1)
    mqtt.disconnect(timeout=0.3)
    with pytest.raises(ProtocolConnectionError) as info:
        mqtt.wait(token, timeout=5)
    assert info.value.status == Status.DISCONNECTED
    wait_until(lambda: token in failures, what="delivery report")
    assert isinstance(failures[token], ProtocolConnectionError)


def test_waiting_too_long_for_an_ack_is_a_timeout(make_client, proxy):
    mqtt = make_client(broker_address="127.0.0.1", port=proxy.port)
    mqtt.connect()
    proxy.blackhole(True)
    with pytest.raises(ProtocolConnectionError) as info:
        mqtt.publish("slow", "x", qos=1, wait=True, timeout=0.3)
    assert info.value.status == Status.TIMEOUT
    proxy.blackhole(False)


def test_broker_refusing_the_protocol_version_is_a_connection_error(make_client):
    with FakeBroker(b"\x20\x02\x00\x01") as fake:  # CONNACK 1: unacceptable protocol version
        mqtt = make_client(broker_address="127.0.0.1", port=fake.port, reconnect=False)
        with pytest.raises(ProtocolConnectionError) as info:
            mqtt.connect()
    assert info.value.status == Status.UNSUPPORTED_PROTOCOL_VERSION


# ---------------------------------------------------------------- ProtocolAuthenticationError

@pytest.mark.parametrize("version", VERSIONS)
def test_wrong_password_is_an_authentication_error(make_client, auth_broker, version):
    mqtt = make_client(auth_broker, username="mqtt_user", password="wrong",
                       protocol_version=version)
    with pytest.raises(ProtocolAuthenticationError) as info:
        mqtt.connect()
    assert info.value.status in (Status.BAD_CREDENTIALS, Status.NOT_AUTHORIZED)
    assert info.value.detail
    assert not mqtt.is_connected


def test_anonymous_client_on_a_password_broker_is_an_authentication_error(make_client,
                                                                          auth_broker):
    with pytest.raises(ProtocolAuthenticationError):
        make_client(auth_broker).connect()


def test_right_password_connects(make_client, auth_broker):
    assert make_client(auth_broker, username="mqtt_user", password="secure_password").connect()


@pytest.mark.parametrize("code,status", [(4, Status.BAD_CREDENTIALS),
                                         (5, Status.NOT_AUTHORIZED)])
def test_connack_refusals_are_authentication_errors(make_client, code, status):
    with FakeBroker(bytes([0x20, 0x02, 0x00, code])) as fake:
        mqtt = make_client(broker_address="127.0.0.1", port=fake.port)
        with pytest.raises(ProtocolAuthenticationError) as info:
            mqtt.connect()
    assert info.value.status == status


@pytest.mark.parametrize("client_cert", ["none", "untrusted"])
def test_rejected_client_certificate_is_an_authentication_error(make_client,
                                                                tls_broker_factory, pki,
                                                                client_cert):
    b = tls_broker_factory(require_certificate=True)
    fields = {}
    if client_cert == "untrusted":
        fields = dict(certfile=pki.untrusted_client_crt, keyfile=pki.untrusted_client_key)
    mqtt = make_client(broker_address="localhost", port=b.port, ca_certs=pki.ca_crt,
                       username="mqtt_user", password="secure_password", **fields)
    with pytest.raises(ProtocolAuthenticationError) as info:
        mqtt.connect()
    assert info.value.status == Status.TLS_CLIENT_CERT_REJECTED


# ---------------------------------------------------------------- ProtocolValidationError

@pytest.mark.parametrize("topic,status", [
    ("a/+", Status.INVALID_TOPIC),
    ("a/#", Status.INVALID_TOPIC),
    ("", Status.INVALID_TOPIC),
    ("a\0b", Status.INVALID_TOPIC),
    ("x" * 70000, Status.INVALID_TOPIC),
])
def test_invalid_publish_topics_are_validation_errors(make_client, broker, topic, status):
    mqtt = make_client(broker)
    mqtt.connect()
    with pytest.raises(ProtocolValidationError) as info:
        mqtt.publish(topic, "x")
    assert info.value.status == status


@pytest.mark.parametrize("topic_filter", ["a/#/b", "a+", "#/a", "", "a/b#"])
def test_invalid_subscribe_filters_are_validation_errors(make_client, broker, topic_filter):
    mqtt = make_client(broker)
    mqtt.connect()
    with pytest.raises(ProtocolValidationError) as info:
        mqtt.subscribe(topic_filter, lambda t, p: None)
    assert info.value.status == Status.INVALID_FILTER
    assert mqtt.subscriptions == {}


def test_invalid_qos_and_arguments_are_validation_errors(make_client, broker):
    mqtt = make_client(broker)
    mqtt.connect()
    with pytest.raises(ProtocolValidationError) as info:
        mqtt.publish("a", "x", qos=3)
    assert info.value.status == Status.INVALID_QOS
    with pytest.raises(ProtocolValidationError) as info:
        mqtt.subscribe("a", lambda t, p: None, qos=-1)
    assert info.value.status == Status.INVALID_QOS
    with pytest.raises(ProtocolValidationError):
        mqtt.subscribe("a", "not callable")  # type: ignore[arg-type]
    with pytest.raises(ProtocolValidationError):
        mqtt.publish("a", object())  # type: ignore[arg-type]
    with pytest.raises(ProtocolValidationError) as info:
        mqtt.publish("a", "\ud800")
    assert info.value.status == Status.INVALID_UTF8
    with pytest.raises(ProtocolValidationError):
        mqtt.publish(b"a", "x")  # type: ignore[arg-type]


def test_payload_over_the_packet_limit_is_a_validation_error(make_client, broker):
    mqtt = make_client(broker, max_packet_size=1024)
    mqtt.connect()
    mqtt.publish("big", b"x" * 900, wait=True)
    with pytest.raises(ProtocolValidationError) as info:
        mqtt.publish("big", b"x" * 2000)
    assert info.value.status == Status.PAYLOAD_TOO_LARGE
    assert "1024" in info.value.detail


def test_connack_identifier_rejected_is_a_validation_error(make_client):
    with FakeBroker(b"\x20\x02\x00\x02") as fake:  # CONNACK 2: identifier rejected
        mqtt = make_client(broker_address="127.0.0.1", port=fake.port)
        with pytest.raises(ProtocolValidationError) as info:
            mqtt.connect()
    assert info.value.status == Status.INVALID_CLIENT_ID


@pytest.fixture
def acl_broker(broker_factory, tmp_path):
    """Anonymous broker whose ACL allows only allowed/#."""
    acl = tmp_path / "acl"
    acl.write_text("topic readwrite allowed/#\n")
    return broker_factory(extra_conf=f"acl_file {acl}")


def _refuse_subscriptions(first: int, body: bytes) -> bytes:
    """SUBACK 0x80 (failure) for every SUBSCRIBE; PINGRESP for PINGREQ."""
    if first >> 4 == 8:
        return bytes([0x90, 0x03]) + body[:2] + b"\x80"
    if first >> 4 == 12:
        return b"\xd0\x00"
    return b""


def test_subscription_refused_by_the_broker_is_a_validation_error(make_client):
    # mosquitto 2.0 grants every subscription and filters by ACL on delivery, so a scripted
    # broker answers SUBACK 0x80.
    with FakeBroker(CONNACK_OK, respond=_refuse_subscriptions) as fake:
        mqtt = make_client(broker_address="127.0.0.1", port=fake.port)
        mqtt.connect()
        with pytest.raises(ProtocolValidationError) as info:
            mqtt.subscribe("denied/x", lambda t, p: None)
        assert info.value.status == Status.SUBSCRIBE_REFUSED
        assert mqtt.subscriptions == {}
        assert mqtt.is_connected


def test_publish_refused_by_the_broker_is_a_validation_error(make_client, acl_broker):
    errors = {}
    mqtt = make_client(acl_broker, protocol_version=5)
    mqtt.on_delivery = lambda token, error: errors.__setitem__(token, error)
    mqtt.connect()
    assert mqtt.publish("allowed/x", "ok", qos=1, wait=True)
    token = mqtt.publish_async("denied/x", "no", qos=1)
    with pytest.raises(ProtocolValidationError) as info:
        mqtt.wait(token, timeout=5)
    assert info.value.status == Status.PUBLISH_REFUSED
    wait_until(lambda: token in errors, what="delivery report")
    assert errors[token].status == Status.PUBLISH_REFUSED


# ---------------------------------------------------------------- ProtocolDecodeError

def test_malformed_connack_is_a_decode_error(make_client):
    with FakeBroker(b"\x00\x00") as fake:  # packet type 0 is reserved
        mqtt = make_client(broker_address="127.0.0.1", port=fake.port)
        with pytest.raises(ProtocolDecodeError) as info:
            mqtt.connect()
    assert info.value.status == Status.PROTOCOL_ERROR
    assert "malformed" in info.value.detail


def test_received_topic_that_is_not_utf8_is_a_decode_error(make_client):
    events = []
    bad_publish = b"\x30\x06\x00\x02\xff\xfehi"  # QoS 0 PUBLISH, topic bytes ff fe
    with FakeBroker(CONNACK_OK, bad_publish) as fake:
        mqtt = make_client(broker_address="127.0.0.1", port=fake.port, reconnect=False)
        mqtt.on_connection_change = events.append
        mqtt.connect()
        wait_until(lambda: len(events) >= 2, what="connection lost event")
    reason = events[1].reason
    assert isinstance(reason, ProtocolDecodeError)
    assert reason.status == Status.PROTOCOL_ERROR and "UTF-8" in reason.detail

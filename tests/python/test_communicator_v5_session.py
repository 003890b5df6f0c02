"""The Python binding's MQTT 5.0 session features against a real mosquitto (issue 8):
delivery reports with the broker's reason code (``wait_report``, ``on_delivery_report``),
CONNACK information and the broker-assigned client id, outbox message expiry, and a
DISCONNECT with reason 0x04 (the broker publishes the will) and its argument checks."""

from __future__ import annotations

import threading
import time

from communicator import ConnectionEvent, DeliveryReport, MessageProperties, Status
from communicator.common.exceptions import ProtocolConnectionError, ProtocolValidationError


def test_acl_denied_publish_reports_reason_0x87(make_client, broker_factory, tmp_path):
    acl = tmp_path / "acl"
    acl.write_text("topic readwrite allowed/#\n")
    broker = broker_factory(extra_conf=f"acl_file {acl}")
    mqtt = make_client(broker, protocol_version=5)
    reports: list[DeliveryReport] = []
    got = threading.Event()

    def on_report(report: DeliveryReport) -> None:
        reports.append(report)
        if len(reports) >= 2:
            got.set()

    mqtt.on_delivery_report = on_report
    mqtt.connect()
    denied = mqtt.publish_async("denied/x", "no", qos=1)
    allowed = mqtt.publish_async("allowed/x", "yes", qos=1)
    report = mqtt.wait_report(denied, timeout=5)
    assert not report.delivered
    assert report.reason_code == 0x87
    assert isinstance(report.error, ProtocolValidationError)
    assert report.error.status == Status.PUBLISH_REFUSED
    assert "not authorized" in str(report.error)
    assert mqtt.wait_report(allowed, timeout=5).delivered
    assert got.wait(5)
    by_token = {r.token: r for r in reports}
    assert by_token[denied].reason_code == 0x87 and not by_token[denied].delivered
    assert by_token[allowed].delivered


def test_empty_client_id_is_assigned_and_connack_is_reported(make_client, broker):
    events: list[ConnectionEvent] = []
    mqtt = make_client(broker, protocol_version=5, client_id="")
    mqtt.on_connection_change = events.append
    mqtt.connect()
    deadline = time.monotonic() + 5
    while not events and time.monotonic() < deadline:
        time.sleep(0.01)
    assert events and events[0].connack is not None
    assigned = events[0].connack.assigned_client_id
    assert assigned and assigned.startswith("auto-")
    assert mqtt.client_id == assigned


def test_connack_property_gives_the_last_connack_with_assigned_id_and_limits(make_client,
                                                                            broker_factory):
    broker = broker_factory(max_inflight_messages=7, extra_conf="max_qos 1\n"
                            "retain_available false\nmax_packet_size 2000\nmax_keepalive 20")
    mqtt = make_client(broker, protocol_version=5, client_id="", keepalive=60)
    assert mqtt.connack is None  # never connected
    mqtt.connect()
    info = mqtt.connack
    assert info is not None
    assert info.assigned_client_id and info.assigned_client_id.startswith("auto-")
    assert info.assigned_client_id == mqtt.client_id
    assert info.server_keep_alive == 20
    assert info.receive_maximum == 7
    assert info.maximum_qos == 1
    assert info.retain_available is False
    assert info.maximum_packet_size == 2000
    assert info.session_present is False
    mqtt.disconnect()
    assert mqtt.connack == info  # the last CONNACK, after disconnecting


def test_offline_message_expires_with_status_expired(make_client, broker):
    mqtt = make_client(broker, protocol_version=5, queue_before_connect=True)
    token = mqtt.publish_async("exp/x", "x", qos=1,
                               properties=MessageProperties(message_expiry=1))
    time.sleep(2.2)
    mqtt.connect()
    report = mqtt.wait_report(token, timeout=5)
    assert isinstance(report.error, ProtocolConnectionError)
    assert report.error.status == Status.EXPIRED


def test_wait_report_raises_for_a_token_never_issued(make_client, broker):
    mqtt = make_client(broker, protocol_version=5)
    mqtt.connect()
    try:
        mqtt.wait_report(12345, timeout=0)
    except ProtocolValidationError as e:
        assert e.status == Status.INVALID_ARGUMENT
    else:
        raise AssertionError("no error")



def test_disconnect_with_reason_0x04_publishes_the_will(make_client, broker, inbox):
    watcher = make_client(broker)
    watcher.connect()
    watcher.subscribe("will/left", inbox)
    device = make_client(broker, protocol_version=5, session_expiry=30)
    device.set_will("will/left", "left", qos=1, retain=False)
    device.connect()
    device.disconnect(reason_code=0x04, session_expiry=0, user_properties=[("why", "test")])
    assert inbox.wait_for(1) == [("will/left", b"left")]


def test_disconnect_options_are_checked(make_client, broker):
    mqtt = make_client(broker, protocol_version=5)
    mqtt.connect()
    for kwargs, status in [
        ({"reason_code": 0x8E}, Status.INVALID_ARGUMENT),  # a server-only reason
        ({"session_expiry": 10}, Status.INVALID_ARGUMENT),  # began with 0: section 3.14.2.2.2
        ({"user_properties": [("k", "\ud800")]}, Status.INVALID_UTF8),
    ]:
        try:
            mqtt.disconnect(**kwargs)
        except ProtocolValidationError as e:
            assert e.status == status, (kwargs, e)
        else:
            raise AssertionError(f"no error for {kwargs}")
    assert mqtt.is_connected
    old = make_client(broker)
    old.connect()
    try:
        old.disconnect(reason_code=0x04)
    except ProtocolValidationError as e:
        assert e.status == Status.MQTT5_REQUIRED
    else:
        raise AssertionError("no error on MQTT 3.1.1")
    assert old.is_connected


def _redirecting_socket(reference: str, in_disconnect: bool = False):
    """A SCRIPTED SOCKET standing in for a broker (mosquitto never sends 0x9C / 0x9D): it
    reads one CONNECT and refuses it with CONNACK 0x9C "use another server" and `reference`,
    or (`in_disconnect`) accepts it and then sends DISCONNECT 0x9D "server moved"."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    listener.settimeout(10)

    def serve() -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(5)
            try:
                conn.recv(4096)  # the CONNECT (small: read whole)
                ref = reference.encode()
                props = bytes([0x1C]) + len(ref).to_bytes(2, "big") + ref
                if in_disconnect:
                    conn.sendall(bytes([0x20, 0x03, 0x00, 0x00, 0x00]))
                    body = bytes([0x9D, len(props)]) + props
                    conn.sendall(bytes([0xE0, len(body)]) + body)
                else:
                    body = bytes([0x00, 0x9C, len(props)]) + props
                    conn.sendall(bytes([0x20, len(body)]) + body)
                conn.recv(4096)  # until the client closes
            except OSError:
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener, thread


def test_connack_use_another_server_is_followed_to_the_referenced_broker(make_client, broker,
                                                                         inbox):
    listener, thread = _redirecting_socket(f"127.0.0.1:{broker.port} other:1")
    try:
        mqtt = make_client(broker_address="127.0.0.1", port=listener.getsockname()[1],
                           protocol_version=5, follow_redirects=True, reconnect=False)
        mqtt.connect()
        mqtt.subscribe("moved/x", inbox)
        mqtt.publish("moved/x", "here", qos=1)
        assert inbox.wait_for(1) == [("moved/x", b"here")]
        broker.wait_for_log(mqtt.client_id)
    finally:
        thread.join(10)
        listener.close()


def test_connack_use_another_server_fails_with_server_moved_when_not_followed(make_client,
                                                                             broker):
    listener, thread = _redirecting_socket(f"127.0.0.1:{broker.port}")
    try:
        mqtt = make_client(broker_address="127.0.0.1", port=listener.getsockname()[1],
                           protocol_version=5, reconnect=False)
        try:
            mqtt.connect()
        except ProtocolConnectionError as e:
            assert e.status == Status.SERVER_MOVED
            assert f"127.0.0.1:{broker.port}" in str(e)
        else:
            raise AssertionError("connected without following the redirect")
    finally:
        thread.join(10)
        listener.close()


def test_server_disconnect_server_moved_sends_the_reconnect_to_the_referenced_broker(
        make_client, broker, inbox):
    listener, thread = _redirecting_socket(f"127.0.0.1:{broker.port}", in_disconnect=True)
    try:
        mqtt = make_client(broker_address="127.0.0.1", port=listener.getsockname()[1],
                           protocol_version=5, follow_redirects=True, reconnect=True)
        mqtt.connect()
        broker.wait_for_log(mqtt.client_id)  # reconnected, to mosquitto
        deadline = time.monotonic() + 10
        while not mqtt.is_connected and time.monotonic() < deadline:
            time.sleep(0.01)
        mqtt.subscribe("moved/y", inbox)
        mqtt.publish("moved/y", "there", qos=1)
        assert inbox.wait_for(1) == [("moved/y", b"there")]
    finally:
        thread.join(10)
        listener.close()

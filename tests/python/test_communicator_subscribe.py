"""MQTTProtocol's MQTT 5.0 subscribing against a real private mosquitto: SubscribeOptions
(no-local, retain handling; retain-as-published is in tests/test_v5_subscribe.py, since
callbacks do not see the retain flag), subscribe_many with per-filter results,
overlapping subscriptions routed by subscription identifiers, shared subscriptions,
unsubscribe_many's reason codes, and options an MQTT 3.1.1 client refuses."""

from __future__ import annotations

import time
import uuid

import pytest

from communicator_testutil import Inbox, wait_until
from harness.authbroker import read_varint

from communicator import (
    ProtocolValidationError,
    RetainHandling,
    Status,
    SubscribeOptions,
)


@pytest.fixture
def prefix() -> str:
    return "py" + uuid.uuid4().hex[:8]


def v5(make_client, broker):
    mqtt = make_client(broker, protocol_version=5)
    mqtt.connect()
    return mqtt


def test_no_local_keeps_own_messages_away(make_client, broker, prefix):
    mqtt, other = v5(make_client, broker), v5(make_client, broker)
    local, plain = Inbox(), Inbox()
    mqtt.subscribe(f"{prefix}/nl", local, qos=1, options=SubscribeOptions(no_local=True))
    mqtt.subscribe(f"{prefix}/plain", plain, qos=1)
    mqtt.publish(f"{prefix}/nl", "own")
    mqtt.publish(f"{prefix}/plain", "own")
    other.publish(f"{prefix}/nl", "marker")
    assert local.wait_for(1) == [(f"{prefix}/nl", b"marker")]
    assert plain.wait_for(1) == [(f"{prefix}/plain", b"own")]


def test_retain_handling_never_and_if_new(make_client, broker, prefix):
    mqtt, pub = v5(make_client, broker), v5(make_client, broker)
    topic = f"{prefix}/r"
    pub.publish(topic, "kept", retain=True)
    never = Inbox()
    mqtt.subscribe(topic, never, options=SubscribeOptions(
        retain_handling=RetainHandling.DO_NOT_SEND))
    pub.publish(topic, "marker")
    assert never.wait_for(1) == [(topic, b"marker")], "no retained message with handling 2"
    new = Inbox()
    mqtt.subscribe(f"{prefix}/#", new, options=SubscribeOptions(
        retain_handling=RetainHandling.SEND_IF_NEW))
    pub.publish(f"{prefix}/m", "marker")
    assert new.wait_for(2) == [(topic, b"kept"), (f"{prefix}/m", b"marker")]
    pub.publish(topic, "", retain=True)


def test_subscribe_many_reports_per_filter_and_routes_overlaps_once(make_client, broker,
                                                                    prefix):
    mqtt, pub = v5(make_client, broker), v5(make_client, broker)
    wide, narrow = Inbox(), Inbox()
    ack = mqtt.subscribe_many([(f"{prefix}/#", wide, 1), (f"{prefix}/+/c", narrow, 0)],
                              user_properties=[("purpose", "test")])
    assert [r.topic for r in ack.results] == [f"{prefix}/#", f"{prefix}/+/c"]
    assert [r.granted_qos for r in ack.results] == [1, 0]
    assert all(r.granted and r.reason_code == r.granted_qos for r in ack.results)
    ids = {r.subscription_id for r in ack.results}
    assert len(ids) == 2 and 0 not in ids
    assert mqtt.subscriptions == {f"{prefix}/#": 1, f"{prefix}/+/c": 0}
    for i in range(10):
        pub.publish(f"{prefix}/b/c", str(i))
    pub.publish(f"{prefix}/b/c", "end")
    assert len(wide.wait_for(11)) == 11
    assert len(narrow.wait_for(11)) == 11
    # The marker came last on both: nothing more is on its way.
    assert wide.payloads()[-1] == b"end" and narrow.payloads()[-1] == b"end"
    assert len(wide.payloads()) == 11 and len(narrow.payloads()) == 11


def test_shared_subscription_is_routed_by_its_inner_filter(make_client, broker, prefix):
    a, b, pub = v5(make_client, broker), v5(make_client, broker), v5(make_client, broker)
    in_a, in_b = Inbox(), Inbox()
    a.subscribe(f"$share/g/{prefix}/s/#", in_a)
    b.subscribe(f"$share/g/{prefix}/s/#", in_b)
    for i in range(200):
        pub.publish_async(f"{prefix}/s/x", str(i))
    pub.publish(f"{prefix}/s/x", "last")
    wait_until(lambda: len(in_a.payloads()) + len(in_b.payloads()) >= 201, 20,
               "201 messages across the group")
    got = set(in_a.payloads()) | set(in_b.payloads())
    assert len(got) == 201
    assert in_a.payloads() and in_b.payloads()


def test_bad_shared_group_and_bad_retain_handling_are_refused(make_client, broker):
    mqtt = v5(make_client, broker)
    with pytest.raises(ProtocolValidationError) as e:
        mqtt.subscribe("$share//a", Inbox())
    assert e.value.status == Status.INVALID_FILTER
    with pytest.raises(ProtocolValidationError) as e:
        mqtt.subscribe("a", Inbox(), options=SubscribeOptions(retain_handling=3))
    assert e.value.status == Status.INVALID_ARGUMENT
    assert mqtt.subscriptions == {}


def test_mqtt5_options_on_a_v311_client_are_refused(make_client, broker):
    mqtt = make_client(broker, protocol_version=4)
    mqtt.connect()
    with pytest.raises(ProtocolValidationError) as e:
        mqtt.subscribe("a", Inbox(), options=SubscribeOptions(no_local=True))
    assert e.value.status == Status.MQTT5_REQUIRED
    with pytest.raises(ProtocolValidationError) as e:
        mqtt.subscribe_many([("a", Inbox())], user_properties=[("k", "v")])
    assert e.value.status == Status.MQTT5_REQUIRED
    # Plain options are fine on 3.1.1, and shared subscriptions are sent as given.
    assert mqtt.subscribe("$share/g/a", Inbox(), options=SubscribeOptions())


def test_unsubscribe_many_reports_no_subscription_existed(make_client, broker, prefix):
    mqtt = v5(make_client, broker)
    mqtt.subscribe(f"{prefix}/a", Inbox())
    ack = mqtt.unsubscribe_many([f"{prefix}/a", f"{prefix}/never"])
    assert [(r.reason_code, r.status) for r in ack.results] == [(0, Status.OK),
                                                                (0x11, Status.OK)]
    assert mqtt.subscriptions == {}


def test_overlapping_subscriptions_stay_exactly_once_after_the_broker_restarts(
        make_client, broker_factory, prefix):
    """The broker (no persistence) forgets every subscription: the client restores them after
    reconnecting, each with its identifier again, so the routing by identifier still holds."""
    broker = broker_factory()
    mqtt = make_client(broker, protocol_version=5, reconnect_min_delay=0.1,
                       reconnect_max_delay=0.5)
    mqtt.connect()
    wide, narrow = Inbox(), Inbox()
    mqtt.subscribe_many([(f"{prefix}/#", wide, 1), (f"{prefix}/+/c", narrow, 1)])
    broker.restart()
    wait_until(lambda: mqtt.is_connected, 30, "reconnected")
    pub = v5(make_client, broker)
    # The restore may still be on its way: publish until both subscriptions see a message.
    probe = 0
    while not (wide.payloads() and narrow.payloads()):
        probe += 1
        pub.publish(f"{prefix}/probe/c", "probe")
        time.sleep(0.1)
        assert probe < 200, "subscriptions were not restored"
    pub.publish(f"{prefix}/b/c", "after")
    pub.publish(f"{prefix}/b/c", "end")
    wait_until(lambda: wide.payloads()[-1:] == [b"end"] and narrow.payloads()[-1:] == [b"end"],
               20, "the end marker on both subscriptions")
    assert wide.payloads().count(b"after") == 1
    assert narrow.payloads().count(b"after") == 1


def _string(data: bytes, at: int) -> tuple[str, int]:
    n = int.from_bytes(data[at:at + 2], "big")
    return data[at + 2:at + 2 + n].decode(), at + 2 + n


def _subscribes(stream: bytes) -> list[tuple[str, int, int | None, list[tuple[str, str]]]]:
    """(filter, options byte, subscription identifier, user properties) of every MQTT 5.0
    SUBSCRIBE in what a client sent."""
    found = []
    at = 0
    while at < len(stream):
        kind = stream[at]
        length, body = read_varint(stream, at + 1)
        end = body + length
        if kind == 0x82:
            props_len, p = read_varint(stream, body + 2)
            props_end = p + props_len
            ident, user = None, []
            while p < props_end:
                prop = stream[p]
                if prop == 0x0B:
                    ident, p = read_varint(stream, p + 1)
                elif prop == 0x26:
                    name, p = _string(stream, p + 1)
                    value, p = _string(stream, p)
                    user.append((name, value))
                else:
                    raise AssertionError(f"unexpected SUBSCRIBE property {prop:#x}")
            while p < end:
                topic, p = _string(stream, p)
                found.append((topic, stream[p], ident, user))
                p += 1
        at = end
    return found


def test_restored_subscriptions_carry_their_options_identifiers_and_user_properties(
        make_client, broker, proxy_factory, prefix):
    """The connection is cut (the broker keeps no session): the client subscribes again on
    the new connection, and the SUBSCRIBEs it sends (recorded by the proxy) are the original
    ones: same options, identifiers and user properties."""
    proxy = proxy_factory(broker.host, broker.port)
    proxy.record()
    mqtt = make_client(broker_address=proxy.host, port=proxy.port, protocol_version=5,
                       reconnect_min_delay=0.05, reconnect_max_delay=0.2)
    mqtt.connect()
    inbox = Inbox()
    mqtt.subscribe_many([(f"{prefix}/a/#", inbox, 2, SubscribeOptions(retain_as_published=True)),
                         (f"{prefix}/b", inbox, 1)], user_properties=[("origin", "first")])
    mqtt.subscribe(f"{prefix}/c", inbox, qos=0, options=SubscribeOptions(no_local=True))
    first = _subscribes(proxy.client_bytes()[0])
    assert [(f, u) for f, _, _, u in first] == [
        (f"{prefix}/a/#", [("origin", "first")]), (f"{prefix}/b", [("origin", "first")]),
        (f"{prefix}/c", [])]
    assert proxy.cut() == 1
    wait_until(lambda: len(proxy.client_bytes()) == 2 and
               len(_subscribes(proxy.client_bytes()[1])) == 3, 30, "three restored filters")
    assert _subscribes(proxy.client_bytes()[1]) == first
    # And they work: once the broker answered all six SUBSCRIBEs it routes to each again.
    suback = f"Sending SUBACK to {mqtt.client_id}"
    wait_until(lambda: broker.log_text().count(suback) >= 6, 30, "the restore's SUBACKs")
    pub = v5(make_client, broker)
    for topic in (f"{prefix}/a/x", f"{prefix}/b", f"{prefix}/c"):
        pub.publish(topic, "after", qos=1)
    assert sorted(t for t, _ in inbox.wait_for(3)) == [f"{prefix}/a/x", f"{prefix}/b",
                                                         f"{prefix}/c"]

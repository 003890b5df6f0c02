"""MQTTProtocol against real private mosquitto brokers: every public method, callbacks and
their threads, hooks, the offline queue, failover, TLS, thread safety and lifetime."""

from __future__ import annotations

import gc
import logging
import threading
import time
import weakref

import pytest

from communicator_testutil import Inbox, wait_until
from harness.ports import free_port

from communicator import (
    ConnectionState,
    MQTTConfig,
    MQTTProtocol,
    ProtocolAuthenticationError,
    ProtocolConnectionError,
    ProtocolError,
    ProtocolManager,
    ProtocolValidationError,
    Status,
)

VERSIONS = [pytest.param(4, id="v311"), pytest.param(5, id="v5")]


# ---------------------------------------------------------------- connect / disconnect

def test_connect_disconnect_and_is_connected(make_client, broker):
    mqtt = make_client(broker)
    assert mqtt.is_connected is False
    assert mqtt.connect() is True
    assert mqtt.is_connected is True
    assert mqtt.connect() is True  # already connected: nothing to do
    mqtt.disconnect()
    assert mqtt.is_connected is False
    mqtt.disconnect()  # idempotent
    assert mqtt.connect() is True  # and the client may connect again
    assert mqtt.is_connected


def test_disconnect_before_connect_is_a_no_op(make_client, broker):
    mqtt = make_client(broker)
    mqtt.disconnect()
    assert not mqtt.is_connected


def test_disconnect_is_clean_so_the_broker_logs_it(make_client, broker):
    mqtt = make_client(broker, client_id="clean-one")
    mqtt.connect()
    mark = broker.log_mark()
    mqtt.disconnect()
    broker.wait_for_log("Client clean-one disconnected", since=mark)


@pytest.mark.parametrize("version", VERSIONS)
def test_context_manager_connects_then_disconnects(make_client, broker, version):
    mqtt = make_client(broker, protocol_version=version)
    with mqtt as entered:
        assert entered is mqtt and mqtt.is_connected
    assert not mqtt.is_connected


def test_client_id_given_or_generated(make_client, broker):
    assert make_client(broker, client_id="my-device").client_id == "my-device"
    generated = make_client(broker).client_id
    assert generated.startswith("eq1-") and len(generated) == 20


# ---------------------------------------------------------------- publish / subscribe

@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_round_trip_at_each_qos(make_client, broker, inbox, version, qos):
    mqtt = make_client(broker, protocol_version=version)
    mqtt.connect()
    assert mqtt.subscribe(f"rt/{qos}", inbox, qos=qos) is True
    assert mqtt.subscriptions == {f"rt/{qos}": qos}
    for i in range(20):
        assert mqtt.publish(f"rt/{qos}", f"m{i}", qos=qos) is True
    got = inbox.wait_for(20)
    assert [p for _, p in got] == [f"m{i}".encode() for i in range(20)]
    assert {t for t, _ in got} == {f"rt/{qos}"}


def test_callback_receives_str_topic_and_bytes_payload(make_client, broker):
    seen = []
    mqtt = make_client(broker)
    mqtt.connect()
    mqtt.subscribe("types/#", lambda topic, payload: seen.append((topic, payload)))
    mqtt.publish("types/ü", "héllo", wait=True)
    wait_until(lambda: seen, what="message")
    topic, payload = seen[0]
    assert type(topic) is str and topic == "types/ü"
    assert type(payload) is bytes and payload == "héllo".encode()


@pytest.mark.parametrize("payload,expected", [
    (b"", b""),
    ("", b""),
    (bytes(range(256)), bytes(range(256))),
    (bytearray(b"\x00\x01"), b"\x00\x01"),
    (memoryview(b"view"), b"view"),
    (42, b"42"),
    (b"x" * (1 << 20), b"x" * (1 << 20)),
])
def test_payload_types(make_client, broker, inbox, payload, expected):
    mqtt = make_client(broker)
    mqtt.connect()
    mqtt.subscribe("payload", inbox)
    mqtt.publish("payload", payload, wait=True)
    assert inbox.wait_for(1)[0] == ("payload", expected)


def test_publish_topics_beyond_the_encoded_topic_cache(make_client, broker, inbox):
    # publish_async keeps encoded topics in a bounded cache (cleared when full): every one of
    # more topics than it holds still reaches its own topic, and an invalid topic published
    # after valid ones is refused every time (failures are never cached).
    from communicator.protocols.mqtt import mqtt_protocol

    count = mqtt_protocol._TOPIC_CACHE_SIZE + 100
    mqtt = make_client(broker)
    mqtt.connect()
    mqtt.subscribe("cache/#", inbox, qos=1)
    tokens = [mqtt.publish_async(f"cache/{i}/ü", str(i).encode(), qos=1) for i in range(count)]
    for _ in range(2):
        with pytest.raises(ProtocolValidationError) as refused:
            mqtt.publish_async("cache/+", b"x", qos=1)
        assert refused.value.status == Status.INVALID_TOPIC
    assert all(mqtt.wait(t, timeout=10) for t in tokens[-5:])
    got = dict(inbox.wait_for(count, timeout=30))
    assert got == {f"cache/{i}/ü": str(i).encode() for i in range(count)}
    assert len(mqtt_protocol._topic_cache) <= mqtt_protocol._TOPIC_CACHE_SIZE


def test_default_qos_is_one(make_client, broker, inbox):
    mqtt = make_client(broker)
    mqtt.connect()
    mqtt.subscribe("dq", inbox)  # qos=None -> default_qos (1)
    assert mqtt.subscriptions == {"dq": 1}
    token = mqtt.publish_async("dq", "x")  # qos 1: the token completes on PUBACK
    assert mqtt.wait(token, timeout=5) is True
    assert mqtt.stats()["delivered"] >= 1


def test_publish_async_tokens_and_wait(make_client, broker):
    mqtt = make_client(broker)
    mqtt.connect()
    tokens = [mqtt.publish_async("tok", str(i), qos=2) for i in range(10)]
    assert tokens == sorted(tokens) and len(set(tokens)) == 10 and tokens[0] > 0
    assert all(mqtt.wait(t, timeout=10) for t in tokens)
    assert mqtt.publish("tok", "last", qos=1, wait=True, timeout=10) is True


def test_wait_on_an_unknown_token_is_a_validation_error(make_client, broker):
    mqtt = make_client(broker)
    mqtt.connect()
    with pytest.raises(ProtocolValidationError) as info:
        mqtt.wait(10_000, timeout=1)
    assert info.value.status == Status.INVALID_ARGUMENT
    with pytest.raises(ProtocolValidationError):
        mqtt.wait(0)


def test_on_delivery_reports_every_token(make_client, broker):
    outcomes: dict[int, object] = {}
    mqtt = make_client(broker)
    mqtt.on_delivery = lambda token, error: outcomes.__setitem__(token, error)
    mqtt.connect()
    tokens = [mqtt.publish_async("deliv", "x", qos=q) for q in (0, 1, 2)]
    wait_until(lambda: len(outcomes) == 3, what="three delivery reports")
    assert outcomes == {t: None for t in tokens}
    mqtt.on_delivery = None
    mqtt.publish("deliv", "x", wait=True)
    assert len(outcomes) == 3


def test_unsubscribe_stops_the_callback(make_client, broker, inbox):
    mqtt = make_client(broker)
    mqtt.connect()
    mqtt.subscribe("unsub", inbox)
    mqtt.publish("unsub", "1", wait=True)
    inbox.wait_for(1)
    assert mqtt.unsubscribe("unsub") is True
    assert mqtt.subscriptions == {}
    mqtt.publish("unsub", "2", wait=True)
    # A marker on another subscription proves the broker had time to route "2".
    marker = Inbox()
    mqtt.subscribe("marker", marker)
    mqtt.publish("marker", "m", wait=True)
    marker.wait_for(1)
    assert inbox.payloads() == [b"1"]
    # Any filter may be unsubscribed again (a persistent session may still hold it).
    assert mqtt.unsubscribe("unsub") is True


def test_subscribing_again_replaces_the_callback(make_client, broker):
    first, second = Inbox(), Inbox()
    mqtt = make_client(broker)
    mqtt.connect()
    mqtt.subscribe("replace", first)
    mqtt.subscribe("replace", second, qos=0)
    assert mqtt.subscriptions == {"replace": 0}
    mqtt.publish("replace", "x", wait=True)
    second.wait_for(1)
    time.sleep(0.2)
    assert first.messages == []


def test_overlapping_subscriptions_each_receive(make_client, broker):
    wild, exact = Inbox(), Inbox()
    mqtt = make_client(broker)
    mqtt.connect()
    mqtt.subscribe("over/#", wild)
    mqtt.subscribe("over/+/c", exact)
    mqtt.publish("over/b/c", "x")
    assert wild.wait_for(1) == [("over/b/c", b"x")]
    assert exact.wait_for(1) == [("over/b/c", b"x")]


def test_retained_message_reaches_a_late_subscriber(make_client, broker, inbox):
    pub = make_client(broker)
    pub.connect()
    pub.publish("retained/state", "on", qos=1, retain=True, wait=True)
    sub = make_client(broker)
    sub.connect()
    sub.subscribe("retained/state", inbox)
    assert inbox.wait_for(1) == [("retained/state", b"on")]


def test_will_is_published_when_the_connection_dies(make_client, broker, proxy, inbox):
    watcher = make_client(broker)
    watcher.connect()
    watcher.subscribe("will/status", inbox)
    device = make_client(broker_address="127.0.0.1", port=proxy.port, reconnect=False)
    device.set_will("will/status", "offline", qos=1, retain=False)
    device.connect()
    time.sleep(0.2)
    assert inbox.messages == []
    proxy.cut()
    assert inbox.wait_for(1) == [("will/status", b"offline")]


def test_cleared_will_is_not_published(make_client, broker, proxy, inbox):
    watcher = make_client(broker)
    watcher.connect()
    watcher.subscribe("will/cleared", inbox)
    device = make_client(broker_address="127.0.0.1", port=proxy.port, reconnect=False)
    device.set_will("will/cleared", "offline")
    device.clear_will()
    device.connect()
    proxy.cut()
    # A control message after the cut proves the watcher is listening and in order.
    watcher.publish("will/cleared", "control", qos=1, wait=True)
    assert inbox.wait_for(1) == [("will/cleared", b"control")]


def test_set_will_while_connected_is_refused(make_client, broker):
    mqtt = make_client(broker)
    mqtt.connect()
    with pytest.raises(ProtocolValidationError) as info:
        mqtt.set_will("w", "x")
    assert info.value.status == Status.INVALID_STATE


def test_stats_count_traffic(make_client, broker, inbox):
    mqtt = make_client(broker)
    before = mqtt.stats()
    assert set(before) == {"published", "delivered", "failed", "received", "queued", "dropped",
                           "reconnects", "bytes_in", "bytes_out"}
    assert all(v == 0 for v in before.values())
    mqtt.connect()
    mqtt.subscribe("stats", inbox)
    for _ in range(3):
        mqtt.publish("stats", "x", qos=1, wait=True)
    inbox.wait_for(3)
    # libeq1 wakes token waiters before it bumps "delivered": let the counter catch up.
    wait_until(lambda: mqtt.stats()["delivered"] == 3, what="delivered == 3")
    s = mqtt.stats()
    assert (s["published"], s["delivered"], s["received"], s["queued"]) == (3, 3, 3, 0), s
    assert s["bytes_out"] > 0 and s["bytes_in"] > 0


# ---------------------------------------------------------------- hooks, reconnect, queue

def test_connection_hook_sees_connect_loss_reconnect_and_disconnect(make_client, proxy, inbox):
    events = []
    mqtt = make_client(broker_address="127.0.0.1", port=proxy.port,
                       reconnect_min_delay=0.1, reconnect_max_delay=0.5)
    mqtt.on_connection_change = events.append
    mqtt.connect()
    mqtt.subscribe("hook", inbox)
    wait_until(lambda: len(events) == 1, what="connected event")
    assert events[0].state == ConnectionState.CONNECTED and events[0].connected
    assert events[0].broker_port == proxy.port and events[0].reason is None
    proxy.cut()
    wait_until(lambda: len(events) >= 3, what="lost + reconnected events")
    lost, again = events[1], events[2]
    assert lost.state == ConnectionState.LOST and not lost.connected
    assert isinstance(lost.reason, ProtocolConnectionError)
    assert again.state == ConnectionState.CONNECTED
    wait_until(lambda: mqtt.is_connected, what="reconnected")
    # The subscription was restored after the reconnect.
    mqtt.publish("hook", "after", wait=True)
    assert inbox.wait_for(1) == [("hook", b"after")]
    assert mqtt.stats()["reconnects"] == 1
    mqtt.disconnect()
    assert events[-1].state == ConnectionState.DISCONNECTED


def test_disconnect_while_reconnecting_stops_the_attempts(make_client, proxy):
    mqtt = make_client(broker_address="127.0.0.1", port=proxy.port,
                       reconnect_min_delay=0.1, reconnect_max_delay=0.2)
    mqtt.connect()
    proxy.refuse(True)
    proxy.cut()
    wait_until(lambda: len(proxy.accept_times) >= 3, what="reconnect attempts")
    mqtt.disconnect()
    assert not mqtt.is_connected
    attempts = len(proxy.accept_times)
    time.sleep(1.0)  # five backoff periods
    assert len(proxy.accept_times) <= attempts + 1, "still reconnecting after disconnect()"


def test_publishes_while_offline_are_queued_and_sent_after_reconnect(make_client, broker,
                                                                      proxy, inbox):
    sub = make_client(broker)
    sub.connect()
    sub.subscribe("offline/#", inbox)
    pub = make_client(broker_address="127.0.0.1", port=proxy.port,
                      reconnect_min_delay=0.2, reconnect_max_delay=0.5)
    pub.connect()
    proxy.refuse(True)
    proxy.cut()
    wait_until(lambda: not pub.is_connected, what="disconnected")
    tokens = [pub.publish_async("offline/q", str(i), qos=1) for i in range(5)]
    wait_until(lambda: pub.stats()["queued"] == 5, what="five queued publishes")
    proxy.refuse(False)
    assert all(pub.wait(t, timeout=15) for t in tokens)
    assert [p for _, p in inbox.wait_for(5)] == [str(i).encode() for i in range(5)]


def test_queue_before_connect(make_client, broker, inbox):
    sub = make_client(broker)
    sub.connect()
    sub.subscribe("early", inbox)
    pub = make_client(broker, queue_before_connect=True)
    token = pub.publish_async("early", "queued first")
    wait_until(lambda: pub.stats()["queued"] == 1, what="one queued publish")
    pub.connect()
    assert pub.wait(token, timeout=10)
    assert inbox.wait_for(1) == [("early", b"queued first")]


def test_queued_before_connect_survives_a_failed_first_connect(make_client, broker, proxy,
                                                               inbox):
    sub = make_client(broker)
    sub.connect()
    sub.subscribe("early/retry", inbox)
    pub = make_client(broker_address="127.0.0.1", port=proxy.port, queue_before_connect=True)
    token = pub.publish_async("early/retry", "kept")
    proxy.refuse(True)
    with pytest.raises(ProtocolConnectionError):
        pub.connect()
    assert pub.stats()["queued"] == 1, "still queued after the failed connect"
    proxy.refuse(False)
    pub.connect()
    assert pub.wait(token, timeout=10)
    assert inbox.wait_for(1) == [("early/retry", b"kept")]


def test_full_queue_rejects_new_publishes(make_client, broker):
    pub = make_client(broker, queue_before_connect=True, max_queued_messages=2)
    for n in (1, 2):
        pub.publish("q", str(n))
        wait_until(lambda: pub.stats()["queued"] == n, what=f"{n} queued")
    with pytest.raises(ProtocolValidationError) as info:
        pub.publish("q", "3")
    assert info.value.status == Status.QUEUE_FULL
    assert "limits are 2 messages" in info.value.detail


def test_full_queue_bound_holds_for_a_burst(make_client, broker):
    accepted = []
    for _ in range(10):
        pub = make_client(broker, queue_before_connect=True, max_queued_messages=2)
        count = 0
        for _ in range(300):
            try:
                pub.publish("q", "x")
                count += 1
            except ProtocolValidationError:
                pass
        accepted.append(count)
    assert accepted == [2] * 10


def test_full_queue_drops_the_oldest_with_drop_oldest(make_client, broker):
    errors = {}
    pub = make_client(broker, queue_before_connect=True, max_queued_messages=1,
                      queue_policy="drop_oldest")
    pub.on_delivery = lambda token, error: errors.__setitem__(token, error)
    first = pub.publish_async("q", "1")
    second = pub.publish_async("q", "2")
    with pytest.raises(ProtocolConnectionError) as info:
        pub.wait(first, timeout=5)
    assert info.value.status == Status.DROPPED
    wait_until(lambda: first in errors, what="drop report")
    assert errors[first].status == Status.DROPPED
    pub.connect()
    assert pub.wait(second, timeout=10)
    assert pub.stats()["dropped"] == 1


def test_failover_to_the_second_broker(make_client, broker):
    events = []
    mqtt = make_client(broker_address="127.0.0.1", port=free_port(),
                       brokers=[(broker.host, broker.port)])
    mqtt.on_connection_change = events.append
    assert mqtt.connect()
    wait_until(lambda: events, what="connected event")
    assert events[0].broker_port == broker.port


# ---------------------------------------------------------------- TLS

def test_tls_with_ca_and_password(make_client, tls_broker, pki, inbox):
    mqtt = make_client(broker_address="localhost", port=tls_broker.port, ca_certs=pki.ca_crt,
                       username="mqtt_user", password="secure_password")
    assert mqtt.config.tls is True
    mqtt.connect()
    mqtt.subscribe("tls/t", inbox, qos=2)
    mqtt.publish("tls/t", "secret", qos=2)
    assert inbox.wait_for(1) == [("tls/t", b"secret")]


def test_tls_hostname_check_can_be_turned_off(make_client, tls_broker_factory, pki):
    b = tls_broker_factory(cert=pki.wrong_host_crt, key=pki.wrong_host_key)
    creds = dict(username="mqtt_user", password="secure_password")
    strict = make_client(broker_address="localhost", port=b.port, ca_certs=pki.ca_crt, **creds)
    with pytest.raises(ProtocolConnectionError) as info:
        strict.connect()
    assert info.value.status == Status.TLS_HOSTNAME_MISMATCH
    relaxed = make_client(broker_address="localhost", port=b.port, ca_certs=pki.ca_crt,
                          tls_verify_hostname=False, **creds)
    assert relaxed.connect()


def test_tls_insecure_accepts_an_unknown_issuer(make_client, tls_broker, pki):
    mqtt = make_client(broker_address="localhost", port=tls_broker.port,
                       ca_certs=pki.other_ca_crt, tls_insecure=True,
                       username="mqtt_user", password="secure_password")
    assert mqtt.connect()


def test_tls_insecure_warns_on_every_connect(make_client, tls_broker, pki, caplog):
    mqtt = make_client(broker_address="localhost", port=tls_broker.port,
                       ca_certs=pki.other_ca_crt, tls_insecure=True,
                       username="mqtt_user", password="secure_password")
    with caplog.at_level(logging.WARNING, logger="communicator"):
        for _ in range(2):
            assert mqtt.connect()
            mqtt.disconnect()
    warnings = [r for r in caplog.records
                if r.levelno == logging.WARNING and "not verified (insecure mode)" in r.getMessage()]
    assert len(warnings) == 2, caplog.text


@pytest.mark.parametrize("key", ["plain", "encrypted"])
def test_tls_client_certificate(make_client, tls_broker_factory, pki, key):
    b = tls_broker_factory(require_certificate=True)
    fields = dict(certfile=pki.client_crt, keyfile=pki.client_key)
    if key == "encrypted":
        fields = dict(certfile=pki.client_crt, keyfile=pki.client_encrypted_key,
                      keyfile_password=pki.client_key_password)
    mqtt = make_client(broker_address="localhost", port=b.port, ca_certs=pki.ca_crt,
                       username="mqtt_user", password="secure_password", **fields)
    assert mqtt.connect()


def test_unreadable_ca_file_is_a_validation_error(make_client, broker, tmp_path):
    bogus = tmp_path / "ca.pem"
    bogus.write_text("not a certificate\n")
    with pytest.raises(ProtocolValidationError) as info:
        mqtt = make_client(broker, ca_certs=str(bogus))
        mqtt.connect()
    assert info.value.status == Status.TLS_CONFIG


# ---------------------------------------------------------------- threads and callbacks

def test_the_dispatcher_thread_keeps_its_python_state_until_disconnected(make_client, broker):
    # The dispatcher thread's Python thread state is kept from the first message to the
    # DISCONNECTED event (without that, ctypes creates and deletes one per callback: a cost
    # per message). Seen from Python: a threading.local set in one callback is still there in
    # the next, and it is released once the client disconnected.
    local = threading.local()
    seen: list[int] = []
    released = threading.Event()

    class Marker:
        pass

    def on_message(topic: str, payload: bytes) -> None:
        if not hasattr(local, "marker"):
            local.marker = Marker()
            weakref.finalize(local.marker, released.set)
            local.count = 0
        local.count += 1
        seen.append(local.count)

    mqtt = make_client(broker)
    mqtt.connect()
    mqtt.subscribe("pinned", on_message, qos=1)
    for i in range(5):
        mqtt.publish("pinned", str(i), qos=1, wait=True)
    wait_until(lambda: len(seen) == 5, what="five messages")
    assert seen == [1, 2, 3, 4, 5]
    assert not released.is_set()
    mqtt.disconnect()
    assert released.wait(10), "the dispatcher thread's state outlived DISCONNECTED"


def test_callbacks_arrive_from_several_publisher_threads(make_client, broker):
    per_thread, threads = 50, 4
    received: dict[str, list[int]] = {}
    callback_threads = set()
    lock = threading.Lock()

    def on_message(topic: str, payload: bytes) -> None:
        with lock:
            received.setdefault(topic, []).append(int(payload))
            callback_threads.add(threading.get_ident())

    sub = make_client(broker)
    sub.connect()
    sub.subscribe("threads/#", on_message, qos=1)
    shared = make_client(broker)
    shared.connect()
    own = [make_client(broker) for _ in range(threads)]
    for c in own:
        c.connect()
    errors = []

    def publisher(n: int, client: MQTTProtocol) -> None:
        try:
            for i in range(per_thread):
                client.publish(f"threads/{n}", str(i), qos=1)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    workers = [threading.Thread(target=publisher, args=(n, shared if n % 2 else own[n]))
               for n in range(threads)]
    publisher_idents = set()
    for w in workers:
        w.start()
        publisher_idents.add(w.ident)
    for w in workers:
        w.join()
    assert not errors
    wait_until(lambda: sum(map(len, received.values())) == per_thread * threads, timeout=30,
               what="all messages")
    for n in range(threads):
        assert received[f"threads/{n}"] == list(range(per_thread))
    # All callbacks run on the client's one dispatcher thread, never a publisher's thread.
    assert len(callback_threads) == 1
    assert not callback_threads & publisher_idents
    assert threading.get_ident() not in callback_threads


def test_exception_in_a_callback_is_logged_and_the_next_message_arrives(make_client, broker,
                                                                        caplog):
    got = []

    def callback(topic: str, payload: bytes) -> None:
        got.append(payload)
        if payload == b"boom":
            raise RuntimeError("callback exploded")

    mqtt = make_client(broker)
    mqtt.connect()
    mqtt.subscribe("boom", callback)
    with caplog.at_level(logging.ERROR, logger="communicator"):
        mqtt.publish("boom", "boom")
        mqtt.publish("boom", "after")
        wait_until(lambda: got == [b"boom", b"after"], what="both messages")
    records = [r for r in caplog.records if r.name == "communicator" and r.exc_info]
    assert records, caplog.text
    assert "callback exploded" in caplog.text and "RuntimeError" in caplog.text
    assert "'boom'" in records[0].getMessage()
    assert mqtt.is_connected


def test_exceptions_in_hooks_are_logged(make_client, broker, caplog):
    mqtt = make_client(broker)

    def bad_hook(*args):
        raise ValueError("hook failed")

    mqtt.on_connection_change = bad_hook
    mqtt.on_delivery = bad_hook
    with caplog.at_level(logging.ERROR, logger="communicator"):
        mqtt.connect()
        mqtt.publish("h", "x", wait=True)
        wait_until(lambda: sum(1 for r in caplog.records if r.exc_info) >= 2,
                   what="two logged errors")
    assert "on_connection_change raised" in caplog.text and "on_delivery raised" in caplog.text
    assert mqtt.is_connected


def test_library_log_records_reach_python_logging(make_client, broker, caplog):
    with caplog.at_level(logging.DEBUG, logger="communicator"):
        mqtt = make_client(broker)
        mqtt.connect()
        mqtt.disconnect()
    texts = [r.getMessage() for r in caplog.records if r.name == "communicator"]
    assert any(t.startswith("libeq1: connected to") for t in texts), texts
    assert any(r.levelno == logging.INFO for r in caplog.records if "libeq1:" in r.getMessage())


def test_callbacks_may_call_the_client(make_client, broker, inbox):
    mqtt = make_client(broker)
    mqtt.connect()
    mqtt.subscribe("reply/out", inbox)
    subscribed_inside = threading.Event()

    def on_request(topic: str, payload: bytes) -> None:
        mqtt.publish("reply/out", b"re:" + payload, wait=True)
        if not subscribed_inside.is_set():
            mqtt.subscribe("reply/extra", inbox)
            subscribed_inside.set()

    mqtt.subscribe("reply/in", on_request)
    mqtt.publish("reply/in", "ping")
    assert inbox.wait_for(1) == [("reply/out", b"re:ping")]
    assert subscribed_inside.wait(5)
    mqtt.publish("reply/extra", "x")
    assert inbox.wait_for(2)[1] == ("reply/extra", b"x")


def test_close_from_inside_a_callback(make_client, broker):
    mqtt = make_client(broker)
    mqtt.connect()
    done = threading.Event()

    def closer(topic: str, payload: bytes) -> None:
        mqtt.close()
        done.set()

    mqtt.subscribe("close/me", closer)
    mqtt.publish("close/me", "x")
    assert done.wait(10)
    wait_until(lambda: mqtt._handle is None, what="native client freed")
    assert not mqtt.is_connected


def test_publish_from_many_threads_on_one_client(make_client, broker, inbox):
    mqtt = make_client(broker)
    mqtt.connect()
    mqtt.subscribe("many/#", inbox, qos=1)
    tokens: list[int] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        for i in range(25):
            t = mqtt.publish_async(f"many/{n}", f"{n}-{i}", qos=1)
            with lock:
                tokens.append(t)

    workers = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert len(set(tokens)) == 200
    assert all(mqtt.wait(t, timeout=20) for t in tokens)
    assert len(inbox.wait_for(200, timeout=30)) == 200


# ---------------------------------------------------------------- lifetime

def test_close_is_idempotent_and_later_calls_fail_cleanly(make_client, broker):
    mqtt = make_client(broker)
    mqtt.connect()
    mqtt.close()
    mqtt.close()
    mqtt.disconnect()
    assert not mqtt.is_connected
    with pytest.raises(ProtocolValidationError) as info:
        mqtt.publish("x", "y")
    assert "closed" in str(info.value) and info.value.status == Status.INVALID_STATE
    with pytest.raises(ProtocolError):
        mqtt.connect()
    with pytest.raises(ProtocolError):
        mqtt.stats()


def test_close_disconnects_cleanly(make_client, broker):
    mqtt = make_client(broker, client_id="closer")
    mqtt.connect()
    mark = broker.log_mark()
    mqtt.close()
    broker.wait_for_log("Client closer disconnected", since=mark)


def test_an_unreferenced_client_is_collected_and_freed(eq1_library, broker):
    received = Inbox()
    mqtt = MQTTProtocol(MQTTConfig(broker_address=broker.host, port=broker.port,
                                   client_id="collected"))
    mqtt.connect()
    mqtt.subscribe("gc", received)
    ref = weakref.ref(mqtt)
    mark = broker.log_mark()
    del mqtt
    gc.collect()
    assert ref() is None
    broker.wait_for_log("Client collected disconnected", since=mark)


def test_concurrent_close_waits_for_calls_in_flight(make_client, broker):
    mqtt = make_client(broker)
    mqtt.connect()
    stop = threading.Event()
    outcomes = []

    def hammer() -> None:
        while not stop.is_set():
            try:
                mqtt.publish("hammer", "x", qos=0)
            except ProtocolError as e:
                outcomes.append(e)
                return

    workers = [threading.Thread(target=hammer) for _ in range(4)]
    for w in workers:
        w.start()
    time.sleep(0.2)
    mqtt.close()
    stop.set()
    for w in workers:
        w.join(10)
    # Every worker stopped with a clean "closed" error (or a not-connected one), never a crash.
    assert all(isinstance(e, ProtocolError) for e in outcomes)


# ---------------------------------------------------------------- manager with MQTT

def test_manager_with_two_mqtt_instances(make_client, broker_factory, inbox):
    b1, b2 = broker_factory(), broker_factory()
    first, second = make_client(b1), make_client(b2)
    manager = ProtocolManager()
    manager.register("first", first)
    manager.register("second", second)
    with manager:
        assert first.is_connected and second.is_connected
        manager.get("first").subscribe("mgr", inbox)
        manager.get("second").subscribe("mgr", inbox)
        manager.get("first").publish("mgr", "to first")
        manager.get("second").publish("mgr", "to second")
        assert sorted(p for _, p in inbox.wait_for(2)) == [b"to first", b"to second"]
    assert not first.is_connected and not second.is_connected
    assert manager.connect_all() == {"first": True, "second": True}
    manager.disconnect_all()
    assert not first.is_connected and not second.is_connected


def test_manager_connect_all_reports_a_refused_mqtt_instance(make_client, broker):
    manager = ProtocolManager()
    manager.register("up", make_client(broker))
    manager.register("down", make_client(broker_address="127.0.0.1", port=free_port()))
    assert manager.connect_all(raise_on_error=False) == {"up": True, "down": False}
    with pytest.raises(ProtocolConnectionError):
        manager.connect_all()
    manager.disconnect_all()


def test_authentication_error_class_through_the_manager(make_client, auth_broker):
    manager = ProtocolManager()
    manager.register("auth", make_client(auth_broker, username="mqtt_user", password="nope"))
    with pytest.raises(ProtocolAuthenticationError):
        manager.connect_all()


def test_native_log_level_follows_the_communicator_logger(make_client, broker, caplog):
    from communicator import _native

    with caplog.at_level(logging.WARNING, logger="communicator"):
        make_client(broker).connect()
        assert _native._log_level_installed == 2  # errors and warnings only cross into Python
    assert not [r for r in caplog.records if "libeq1: connected" in r.getMessage()]
    with caplog.at_level(logging.DEBUG, logger="communicator"):
        make_client(broker).connect()
        assert _native._log_level_installed == 4


def test_no_callback_runs_after_unsubscribe_returns(make_client, broker):
    """A slow handler of an overlapping subscription is running when the other subscription
    is removed: its handler may still run, but only before unsubscribe() returns."""
    mqtt = make_client(broker)
    mqtt.connect()
    slow_started = threading.Event()
    calls: list[float] = []

    def slow(topic: str, payload: bytes) -> None:
        slow_started.set()
        time.sleep(0.5)

    mqtt.subscribe("race/#", slow)
    mqtt.subscribe("race/x", lambda t, p: calls.append(time.monotonic()))
    mqtt.publish("race/x", "1", qos=1, wait=True)
    assert slow_started.wait(5)
    mqtt.unsubscribe("race/x")
    returned = time.monotonic()
    time.sleep(0.8)  # anything still queued for the removed handler would run now
    assert all(t < returned for t in calls), (calls, returned)


def test_mqtt5_properties_are_sent_and_received(make_client, broker):
    from communicator import MessageProperties

    mqtt = make_client(broker, protocol_version=5)
    mqtt.connect()
    got: list[tuple[str, bytes, object]] = []
    arrived = threading.Event()

    def on_message(topic: str, payload: bytes, properties) -> None:
        got.append((topic, payload, properties))
        arrived.set()

    mqtt.subscribe("props/py", on_message, with_properties=True)
    sent = MessageProperties(payload_is_utf8=True, message_expiry=600,
                             content_type="text/plain", response_topic="props/reply",
                             correlation_data=b"\x00\x07", user_properties=[("k", "v")])
    mqtt.publish("props/py", "hi", qos=1, wait=True, properties=sent)
    assert arrived.wait(5)
    topic, payload, received = got[0]
    assert (topic, payload) == ("props/py", b"hi")
    assert received.content_type == "text/plain"
    assert received.response_topic == "props/reply"
    assert received.correlation_data == b"\x00\x07"
    assert received.user_properties == [("k", "v")]
    assert received.payload_is_utf8 is True
    assert 590 <= received.message_expiry <= 600


def test_properties_on_mqtt311_are_refused(make_client, broker):
    from communicator import MessageProperties

    mqtt = make_client(broker)
    mqtt.connect()
    with pytest.raises(ProtocolValidationError) as info:
        mqtt.publish("p", "x", properties=MessageProperties(content_type="a"))
    assert info.value.status == Status.INVALID_ARGUMENT


def test_a_blocked_handler_holds_back_the_broker_instead_of_queueing(make_client, broker):
    """QoS 1 messages are acknowledged after their handler returned: while it is blocked the
    broker stops at its inflight window (mosquitto: 20) rather than the client queueing all."""
    release = threading.Event()
    seen: list[bytes] = []

    def blocked(topic: str, payload: bytes) -> None:
        release.wait(30)
        seen.append(payload)

    sub = make_client(broker)
    sub.connect()
    sub.subscribe("flow", blocked, qos=1)
    pub = make_client(broker)
    pub.connect()
    for i in range(500):
        pub.publish("flow", str(i), qos=1)
    wait_until(lambda: sub.stats()["received"] >= 20, what="the first window")
    time.sleep(0.5)
    held = sub.stats()["received"]
    assert held <= 21, f"{held} messages taken while the handler was blocked"
    release.set()
    wait_until(lambda: len(seen) == 500, timeout=30, what="all 500 after the release")
    assert seen == [str(i).encode() for i in range(500)]

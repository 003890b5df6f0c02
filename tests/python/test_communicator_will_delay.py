"""MQTT 5.0 will delay and will properties through a real mosquitto and a TcpProxy that cuts
the connection (issue 8): the will arrives after the delay when the client is gone, with its
properties, and does not arrive when the client resumes its session within the delay."""

from __future__ import annotations

import threading
import time

from communicator import ConnectionEvent, ConnectionState, MessageProperties


def _collector():
    got: list[tuple[str, bytes, object]] = []
    arrived = threading.Event()

    def on_message(topic: str, payload: bytes, properties) -> None:
        got.append((topic, payload, properties))
        arrived.set()

    return got, arrived, on_message


def test_will_arrives_after_its_delay_with_its_properties(make_client, broker, proxy_factory):
    proxy = proxy_factory(broker.host, broker.port)
    got, arrived, on_message = _collector()
    watcher = make_client(broker, protocol_version=5)
    watcher.connect()
    watcher.subscribe("will/delayed", on_message, qos=1, with_properties=True)

    dying = make_client(broker_address="127.0.0.1", port=proxy.port, protocol_version=5,
                        client_id="will-delay-dies", clean_session=False, session_expiry=60,
                        reconnect=False)
    dying.set_will("will/delayed", "gone", qos=1, delay=1,
                   properties=MessageProperties(content_type="text/plain",
                                                user_properties=[("why", "cut")]))
    dying.connect()
    cut_at = time.monotonic()
    proxy.cut()
    assert arrived.wait(15), "the will never arrived"
    topic, payload, properties = got[0]
    assert (topic, payload) == ("will/delayed", b"gone")
    assert properties.content_type == "text/plain"
    assert properties.user_properties == [("why", "cut")]
    # The broker waited (its log says when it sent the will; we only check it was delayed at
    # all, not how long: no timing assertion beyond "not before the cut").
    assert time.monotonic() > cut_at


def test_will_does_not_arrive_when_the_session_resumes_within_the_delay(make_client, broker,
                                                                        proxy_factory):
    proxy = proxy_factory(broker.host, broker.port)
    got, arrived, on_message = _collector()
    watcher = make_client(broker, protocol_version=5)
    watcher.connect()
    watcher.subscribe("will/resumed", on_message, qos=1, with_properties=True)

    events: list[ConnectionEvent] = []
    reconnected = threading.Event()

    def on_change(event: ConnectionEvent) -> None:
        events.append(event)
        if sum(e.state == ConnectionState.CONNECTED for e in events) >= 2:
            reconnected.set()

    client = make_client(broker_address="127.0.0.1", port=proxy.port, protocol_version=5,
                         client_id="will-delay-resumes", clean_session=False, session_expiry=60,
                         reconnect=True, reconnect_min_delay=0.2, reconnect_max_delay=0.5)
    client.on_connection_change = on_change
    delay = 4
    client.set_will("will/resumed", "gone", qos=1, delay=delay)
    client.connect()
    proxy.cut()
    assert reconnected.wait(10), "the client did not reconnect"
    assert events[-1].session_present, "the broker kept the session"
    # The will would have been sent `delay` s after the cut: wait past that, then check. A
    # marker published by the client after the delay arrives after any will would have.
    time.sleep(delay + 1.5)
    client.publish("will/resumed", "marker", qos=1, wait=True)
    assert arrived.wait(10)
    deadline = time.monotonic() + 5
    while not any(p == b"marker" for _, p, _ in got) and time.monotonic() < deadline:
        time.sleep(0.01)
    payloads = [p for _, p, _ in got]
    assert payloads == [b"marker"], payloads

"""Automatic outbound topic aliases (MQTT 5.0) through a real mosquitto: a 10,000-message
stream over 100 topics arrives complete with the right topics, while the bytes the client sent
(recorded by the TcpProxy in between) carry each topic once per connection, across a
reconnect too. The LRU replacement is unit-tested in src/mqtt/session_tests.rs."""

from __future__ import annotations

import os
import sys
import threading
from collections import Counter
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TOPICS = [f"telemetry/plant-7/line-{i:03d}/sensor/temperature" for i in range(100)]
MESSAGES = 10_000


@pytest.fixture
def mqtt(built_library):
    """The communicator package loading the freshly built library; clients closed after."""
    os.environ["EQ1_LIBRARY"] = str(Path(built_library) / "libeq1.so")
    bindings = str(REPO / "bindings" / "python")
    if bindings not in sys.path:
        sys.path.insert(0, bindings)
    from communicator.protocols.mqtt.mqtt_protocol import MQTTConfig, MQTTProtocol

    made = []

    def make(host, port, **fields):
        client = MQTTProtocol(MQTTConfig(broker_address=host, port=port, timeout=10,
                                         protocol_version=5, **fields))
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


class Counts:
    """Messages received per topic, distinct payloads per topic (QoS 1 may duplicate)."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.seen: set[tuple[str, bytes]] = set()

    def __call__(self, topic: str, payload: bytes) -> None:
        with self.cond:
            self.seen.add((topic, payload))
            self.cond.notify_all()

    def wait_for(self, count: int, timeout: float = 60.0) -> None:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.seen) >= count, timeout), \
                f"{len(self.seen)} of {count} distinct messages arrived"


def stream(publisher, counts, proxy, cut_at=None):
    """Publishes MESSAGES QoS 1 messages round-robin over TOPICS; cuts the proxy once
    `cut_at` messages have arrived (if given)."""
    tokens = []
    for n in range(MESSAGES):
        topic = TOPICS[n % len(TOPICS)]
        tokens.append(publisher.publish_async(topic, f"{n}".encode(), qos=1))
        if cut_at is not None and n == cut_at:
            counts.wait_for(cut_at // 2)
            assert proxy.cut() == 1
    for token in tokens:
        publisher.wait(token, 60)
    counts.wait_for(MESSAGES)


def assert_complete(counts):
    per_topic = Counter(topic for topic, _ in counts.seen)
    assert set(per_topic) == set(TOPICS)
    assert all(per_topic[t] == MESSAGES // len(TOPICS) for t in TOPICS), per_topic
    for topic, payload in counts.seen:
        assert TOPICS[int(payload) % len(TOPICS)] == topic, (topic, payload)


def topic_occurrences(sent: bytes) -> Counter:
    return Counter({t: sent.count(t.encode()) for t in TOPICS})


@pytest.mark.timeout(240)
def test_each_topic_crosses_the_wire_once_per_connection(broker_factory, proxy_factory, mqtt):
    broker = broker_factory(extra_conf="max_topic_alias 200")
    proxy = proxy_factory(broker.host, broker.port)
    proxy.record()
    counts = Counts()
    subscriber = mqtt(broker.host, broker.port)
    subscriber.connect()
    subscriber.subscribe("telemetry/#", counts, qos=1)
    publisher = mqtt(proxy.host, proxy.port)
    publisher.connect()
    stream(publisher, counts, proxy)
    assert_complete(counts)
    connections = proxy.client_bytes()
    assert len(connections) == 1
    assert topic_occurrences(connections[0]) == Counter({t: 1 for t in TOPICS})
    # Without aliases every message carries its topic: the saving is real.
    assert len(connections[0]) < MESSAGES * len(TOPICS[0]) // 2


@pytest.mark.timeout(240)
def test_aliases_are_established_again_after_a_reconnect(broker_factory, proxy_factory, mqtt):
    broker = broker_factory(extra_conf="max_topic_alias 200")
    proxy = proxy_factory(broker.host, broker.port)
    proxy.record()
    counts = Counts()
    subscriber = mqtt(broker.host, broker.port)
    subscriber.connect()
    subscriber.subscribe("telemetry/#", counts, qos=1)
    publisher = mqtt(proxy.host, proxy.port, reconnect_min_delay=0.05,
                     reconnect_max_delay=0.2)
    publisher.connect()
    stream(publisher, counts, proxy, cut_at=MESSAGES // 2)
    assert_complete(counts)
    assert publisher.stats()["reconnects"] >= 1
    connections = proxy.client_bytes()
    assert len(connections) == 2, "one cut, one reconnect"
    first, second = (topic_occurrences(c) for c in connections)
    # The first connection carried every topic (at most) once before the cut; the second
    # establishes every alias again, once each, whatever was resent.
    assert max(first.values()) == 1
    assert second == Counter({t: 1 for t in TOPICS})


@pytest.mark.timeout(120)
def test_turned_off_every_message_carries_its_topic(broker_factory, proxy_factory, mqtt):
    broker = broker_factory(extra_conf="max_topic_alias 200")
    proxy = proxy_factory(broker.host, broker.port)
    proxy.record()
    publisher = mqtt(proxy.host, proxy.port, topic_alias_auto=False)
    publisher.connect()
    tokens = [publisher.publish_async(TOPICS[n % 10], b"x", qos=1) for n in range(200)]
    for token in tokens:
        publisher.wait(token, 30)
    occurrences = topic_occurrences(proxy.client_bytes()[0])
    assert all(occurrences[t] == 20 for t in TOPICS[:10]), occurrences

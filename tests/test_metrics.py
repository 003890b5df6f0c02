"""Metrics (eq1_mqtt_client_metrics_text, Python metrics()): scraped with a real OpenMetrics
parser (prometheus_client's) and checked against a known stream through real mosquitto."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from harness import cprog

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "python"))
from communicator_testutil import BINDINGS, wait_until  # noqa: E402

if str(BINDINGS) not in sys.path:
    sys.path.insert(0, str(BINDINGS))


@pytest.fixture
def make_client(built_library, monkeypatch):
    monkeypatch.setenv("EQ1_LIBRARY", str(Path(built_library) / "libeq1.so"))
    from communicator.protocols.mqtt.mqtt_protocol import MQTTConfig, MQTTProtocol

    made = []

    def make(broker, **fields):
        fields.setdefault("timeout", 10)
        client = MQTTProtocol(MQTTConfig(broker_address=broker.host, port=broker.port,
                                         **fields))
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def scrape(text: str) -> dict[tuple[str, tuple], float]:
    """Every sample as {(name, sorted labels): value}; the parser rejects malformed text."""
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def test_a_known_stream_is_counted_and_parses_as_openmetrics(make_client, broker):
    mqtt = make_client(broker, protocol_version=5)
    got = []
    mqtt.connect()
    mqtt.subscribe("m/#", lambda topic, payload: got.append(payload), qos=2)
    sent = {0: 50, 1: 40, 2: 30}
    for qos, count in sent.items():
        for i in range(count):
            mqtt.publish(f"m/{qos}", f"{qos}-{i}", qos=qos, wait=True)
    wait_until(lambda: len(got) == 120, what="the 120 messages back")

    samples = scrape(mqtt.metrics_text())
    assert samples[("eq1_mqtt_published_total", ())] == 120
    assert samples[("eq1_mqtt_delivered_total", ())] == 120
    assert samples[("eq1_mqtt_received_total", ())] == 120
    assert samples[("eq1_mqtt_failed_total", ())] == 0
    assert samples[("eq1_mqtt_connected", ())] == 1
    assert samples[("eq1_mqtt_connection_uptime_seconds", ())] > 0
    assert samples[("eq1_mqtt_outbox_messages", ())] == 0
    assert samples[("eq1_mqtt_pending_deliveries", ())] == 0
    assert samples[("eq1_mqtt_sent_bytes_total", ())] > 120 * 4
    for qos, count in sent.items():
        q = (("qos", str(qos)),)
        assert samples[("eq1_mqtt_publish_latency_seconds_count", q)] == count
        assert samples[("eq1_mqtt_publish_latency_seconds_sum", q)] > 0
        buckets = sorted((float(dict(labels)["le"]), value)
                         for (name, labels), value in samples.items()
                         if name == "eq1_mqtt_publish_latency_seconds_bucket"
                         and dict(labels)["qos"] == str(qos))
        assert buckets[-1] == (float("inf"), count)
        assert [v for _, v in buckets] == sorted(v for _, v in buckets)  # cumulative
        p50 = samples[("eq1_mqtt_publish_latency_estimate_seconds",
                       (("qos", str(qos)), ("stat", "p50")))]
        top = samples[("eq1_mqtt_publish_latency_estimate_seconds",
                       (("qos", str(qos)), ("stat", "max")))]
        assert 0 < p50 <= top

    # metrics() is the same data as a dict.
    m = mqtt.metrics()
    assert m["published_total"] == 120 and m["received_total"] == 120
    assert {qos: m["publish_latency_seconds"][qos]["count"] for qos in sent} == sent
    assert m["publish_latency_seconds"][1]["p50"] <= m["publish_latency_seconds"][1]["max"]


def test_outbox_depth_and_disconnects_by_reason(make_client, broker):
    mqtt = make_client(broker, reconnect=True, reconnect_min_delay=0.1)
    mqtt.connect()
    broker.stop()
    wait_until(lambda: not mqtt.is_connected, what="the loss seen")
    topics = [f"offline/{i}" for i in range(7)]
    for i, topic in enumerate(topics):
        mqtt.publish(topic, "p" * i, qos=1)
    m = mqtt.metrics()
    assert m["connected"] == 0 and m["connection_uptime_seconds"] == 0
    assert m["outbox_messages"] == 7
    assert m["outbox_bytes"] == sum(len(t) + i for i, t in enumerate(topics))
    assert m["pending_deliveries"] == 7
    lost = m["disconnects_total"]
    assert sum(lost.values()) == 1 and "requested" not in lost
    assert all(reason.startswith("EQ1_STATUS_") for reason in lost)

    broker.start()
    wait_until(lambda: mqtt.metrics()["pending_deliveries"] == 0, timeout=20,
               what="the queued publishes delivered after the reconnect")
    m = mqtt.metrics()
    assert m["outbox_messages"] == 0 and m["outbox_bytes"] == 0
    assert m["reconnects_total"] == 1 and m["delivered_total"] == 7
    assert m["publish_latency_seconds"][1]["count"] == 7
    mqtt.disconnect()
    assert mqtt.metrics()["disconnects_total"] == {**lost, "requested": 1}


@pytest.fixture
def metrics_program(built_library):
    return cprog.compile_c([REPO / "tests" / "c" / "test_metrics.c"])


def test_c_metrics_text_under_valgrind(metrics_program, broker):
    r = cprog.run(metrics_program, [broker.host, broker.port], timeout=240, valgrind=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUMMARY:" in r.stdout and " 0 failed" in r.stdout, r.stdout
    cprog.assert_valgrind_clean(r)

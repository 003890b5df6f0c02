"""MQTTConfig(protocol_version=3): MQTT 3.1 ("MQIsdp") against the real mosquitto, whose log
names the protocol ("p1" is 3.1); client ids over 3.1's 23 bytes are refused."""

from __future__ import annotations

import threading

import pytest

from communicator import MQTTConfig, ProtocolValidationError, Status


def test_mqtt31_client_id_over_23_bytes_is_refused_by_the_config(eq1_library):
    with pytest.raises(ProtocolValidationError) as info:
        MQTTConfig(protocol_version=3, client_id="y" * 24)
    assert info.value.status == Status.INVALID_CLIENT_ID


def test_mqtt31_round_trip_from_python(make_client, broker):
    got: list = []
    arrived = threading.Event()

    def on_message(topic, payload):
        got.append(payload)
        arrived.set()

    client = make_client(broker, protocol_version=3, client_id="eq1-py-mqtt31", reconnect=False)
    client.connect()
    client.subscribe("v31/py", on_message, qos=1)
    assert client.publish("v31/py", b"hello 3.1", qos=1)
    assert arrived.wait(10), "the message did not come back"
    assert got[0] in (b"hello 3.1", "hello 3.1"), got
    client.disconnect()
    broker.wait_for_log("as eq1-py-mqtt31 (p1,")

"""MQTT 5.0 request/response through a real mosquitto: concurrent blocking and asynchronous
requests each answered with their own reply (C, pthreads), timeouts, the pending bound, bad
input at the C boundary (also under valgrind), and the Python binding's request()/respond()."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from harness import cprog

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO / "tests" / "c" / "test_request_response.c"


@pytest.fixture
def program(built_library):
    return cprog.compile_c([SOURCE], extra_flags=("-lpthread",))


def assert_all_passed(r):
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUMMARY:" in r.stdout and " 0 failed" in r.stdout, r.stdout


@pytest.mark.timeout(240)
def test_1000_concurrent_requests_from_4_threads_each_get_their_own_reply(program, broker):
    r = cprog.run(program, [broker.host, broker.port, "load", 1000, 4], timeout=200)
    assert_all_passed(r)
    assert "blocking: 1000 ok, 0 wrong, 0 failed" in r.stdout
    assert "async: 1000 sent, 1000 matched, 1000 called once" in r.stdout


@pytest.mark.valgrind
@pytest.mark.timeout(300)
def test_requests_are_clean_under_valgrind(program, broker):
    r = cprog.run(program, [broker.host, broker.port, "load", 40, 4], timeout=280,
                  valgrind=True)
    assert_all_passed(r)
    cprog.assert_valgrind_clean(r)


@pytest.mark.valgrind
@pytest.mark.timeout(300)
def test_bad_input_to_request_response_functions_has_its_status(program, broker):
    r = cprog.run(program, [broker.host, broker.port, "bad"], timeout=280, valgrind=True)
    assert_all_passed(r)
    cprog.assert_valgrind_clean(r)


@pytest.fixture
def mqtt(built_library):
    os.environ["EQ1_LIBRARY"] = str(Path(built_library) / "libeq1.so")
    bindings = str(REPO / "bindings" / "python")
    if bindings not in sys.path:
        sys.path.insert(0, bindings)
    from communicator.protocols.mqtt.mqtt_protocol import MQTTConfig, MQTTProtocol

    made = []

    def make(broker, **fields):
        fields.setdefault("protocol_version", 5)
        client = MQTTProtocol(MQTTConfig(broker_address=broker.host, port=broker.port,
                                         timeout=10, **fields))
        made.append(client)
        client.connect()
        return client

    yield make
    for client in made:
        client.close()


@pytest.mark.timeout(120)
def test_python_request_returns_the_reply_and_raises_on_timeout(broker, mqtt):
    from communicator.common.exceptions import (
        ProtocolConnectionError,
        ProtocolValidationError,
        Status,
    )

    responder = mqtt(broker)

    def answer(topic, payload, properties):
        responder.respond(properties, b"re:" + payload, qos=1)

    responder.subscribe("svc/py", answer, qos=1, with_properties=True)
    requester = mqtt(broker, response_topic_prefix="py/replies/")
    for n in range(20):
        assert requester.request("svc/py", f"q{n}", timeout=10) == f"re:q{n}".encode()
    with pytest.raises(ProtocolConnectionError) as timed_out:
        requester.request("svc/nobody", b"?", timeout=0.3)
    assert timed_out.value.status == Status.TIMEOUT
    with pytest.raises(ProtocolValidationError) as not_a_request:
        responder.respond(None, b"x")
    assert not_a_request.value.status == Status.NO_RESPONSE_TOPIC
    v311 = mqtt(broker, protocol_version=4)
    with pytest.raises(ProtocolValidationError) as old:
        v311.request("svc/py", b"x", timeout=1)
    assert old.value.status == Status.MQTT5_REQUIRED

"""AsyncMQTTProtocol: the asyncio API over the same native client, against real mosquitto.

Each test runs its coroutine with asyncio.run (no pytest plugin needed)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading

import pytest

from communicator_testutil import BINDINGS, wait_until


def _config(broker, **fields):
    from communicator.protocols.mqtt.mqtt_protocol import MQTTConfig

    fields.setdefault("timeout", 10)
    return MQTTConfig(broker_address=broker.host, port=broker.port, **fields)


@pytest.mark.parametrize("version", [4, 5])
def test_publish_at_every_qos_reaches_a_stream_in_order(broker, version):
    from communicator.protocols.mqtt import AsyncMQTTProtocol, Message

    async def main():
        loop_thread = threading.get_ident()
        async with AsyncMQTTProtocol(_config(broker, protocol_version=version)) as mqtt:
            async with mqtt.messages("aio/+", qos=2) as stream:
                reports = [await mqtt.publish(f"aio/{qos}", f"m{qos}", qos=qos)
                           for qos in (0, 1, 2)]
                got = [await asyncio.wait_for(stream.__anext__(), 10) for _ in range(3)]
            assert threading.get_ident() == loop_thread
            return reports, got

    reports, got = asyncio.run(main())
    assert [r.delivered for r in reports] == [True, True, True]
    assert len({r.token for r in reports}) == 3
    assert [(m.topic, m.payload) for m in got] == [("aio/0", b"m0"), ("aio/1", b"m1"),
                                                   ("aio/2", b"m2")]
    assert all(isinstance(m, Message) for m in got)


def test_message_properties_reach_the_stream_under_mqtt5(broker):
    from communicator.protocols.mqtt import AsyncMQTTProtocol
    from communicator.protocols.mqtt.mqtt_protocol import MessageProperties

    async def main():
        async with AsyncMQTTProtocol(_config(broker, protocol_version=5)) as mqtt:
            async with mqtt.messages("aio/props") as stream:
                await mqtt.publish("aio/props", b"{}", qos=1, properties=MessageProperties(
                    content_type="application/json", user_properties=[("k", "v")]))
                return await asyncio.wait_for(stream.__anext__(), 10)

    message = asyncio.run(main())
    assert message.payload == b"{}"
    assert message.properties is not None
    assert message.properties.content_type == "application/json"
    assert message.properties.user_properties == [("k", "v")]


def test_two_streams_of_one_filter_each_get_every_message_and_the_last_unsubscribes(broker):
    from communicator.protocols.mqtt import AsyncMQTTProtocol

    async def main():
        async with AsyncMQTTProtocol(_config(broker)) as mqtt:
            first = mqtt.messages("aio/fan/#", qos=1)
            second = mqtt.messages("aio/fan/#", qos=1)
            async with first, second:
                assert mqtt.sync.subscriptions == {"aio/fan/#": 1}
                for i in range(5):
                    await mqtt.publish(f"aio/fan/{i}", str(i), qos=1)
                a = [(await asyncio.wait_for(first.__anext__(), 10)).payload for _ in range(5)]
                b = [(await asyncio.wait_for(second.__anext__(), 10)).payload for _ in range(5)]
                await first.aclose()
                still = dict(mqtt.sync.subscriptions)
                await mqtt.publish("aio/fan/after", "x", qos=1)
                late = (await asyncio.wait_for(second.__anext__(), 10)).topic
            after = dict(mqtt.sync.subscriptions)
            # A closed stream ends: its iteration stops instead of hanging.
            ended = [m async for m in first]
            return a, b, still, late, after, ended

    a, b, still, late, after, ended = asyncio.run(main())
    expected = [str(i).encode() for i in range(5)]
    assert a == expected and b == expected
    assert still == {"aio/fan/#": 1}
    assert late == "aio/fan/after"
    assert after == {}
    assert ended == []


def test_a_full_stream_holds_the_broker_back_and_loses_nothing(broker, make_client):
    """queue_size bounds what a stream holds; the rest waits (dispatcher, inbound bound,
    broker) and arrives once the reader reads."""
    from communicator.protocols.mqtt import AsyncMQTTProtocol

    count, bound = 300, 5
    publisher = make_client(broker)
    publisher.connect()

    async def main():
        async with AsyncMQTTProtocol(_config(broker)) as mqtt:
            async with mqtt.messages("aio/flow", qos=1, queue_size=bound) as stream:
                for i in range(count):
                    publisher.publish_async("aio/flow", str(i), qos=1)
                # Not reading: the stream fills to its bound and stays there.
                deadline = asyncio.get_running_loop().time() + 10
                while stream._queue.qsize() < bound:
                    assert asyncio.get_running_loop().time() < deadline, "stream never filled"
                    await asyncio.sleep(0.02)
                peak = stream._queue.qsize()
                await asyncio.sleep(0.5)
                peak = max(peak, stream._queue.qsize())
                got = []
                while len(got) < count:
                    message = await asyncio.wait_for(stream.__anext__(), 20)
                    got.append(int(message.payload))
                    peak = max(peak, stream._queue.qsize())
                return peak, got

    peak, got = asyncio.run(main())
    assert peak <= bound
    assert got == list(range(count))


def test_a_refused_publish_raises_with_the_reason_code(broker_factory, tmp_path):
    from communicator.common.exceptions import ProtocolValidationError, Status
    from communicator.protocols.mqtt import AsyncMQTTProtocol

    acl = tmp_path / "acl"
    acl.write_text("topic readwrite allowed/#\n")
    acl_broker = broker_factory(extra_conf=f"acl_file {acl}")

    async def main():
        async with AsyncMQTTProtocol(_config(acl_broker, protocol_version=5)) as mqtt:
            ok = await mqtt.publish("allowed/x", "ok", qos=1)
            with pytest.raises(ProtocolValidationError) as info:
                await mqtt.publish("denied/x", "no", qos=1)
            return ok, info.value

    ok, error = asyncio.run(main())
    # mosquitto says 0x10 (no matching subscribers): delivered, with the broker's code.
    assert ok.delivered and ok.reason_code == 0x10
    assert error.status == Status.PUBLISH_REFUSED
    assert "0x87" in error.detail or "authoriz" in error.detail.lower()


def test_close_fails_a_publish_still_awaited(broker):
    """A QoS 1 publish queued while the broker is unreachable is failed by close(), never
    left hanging."""
    from communicator.common.exceptions import ProtocolError
    from communicator.protocols.mqtt import AsyncMQTTProtocol

    async def main():
        mqtt = AsyncMQTTProtocol(_config(broker, reconnect=True))
        await mqtt.connect()
        broker.stop()
        wait_until(lambda: not mqtt.is_connected, what="the client to see the broker gone")
        pending = asyncio.ensure_future(mqtt.publish("aio/offline", "queued", qos=1))
        await asyncio.sleep(0.2)
        assert not pending.done()
        await mqtt.close()
        with pytest.raises(ProtocolError):
            await asyncio.wait_for(pending, 10)

    asyncio.run(main())


def test_request_is_answered_through_asyncio(broker, make_client):
    from communicator.protocols.mqtt import AsyncMQTTProtocol

    responder = make_client(broker, protocol_version=5)
    responder.connect()
    responder.subscribe("aio/svc", lambda topic, payload, props: responder.respond(
        props, b"re:" + payload), qos=1, with_properties=True)

    async def main():
        async with AsyncMQTTProtocol(_config(broker, protocol_version=5)) as mqtt:
            return await asyncio.gather(*(mqtt.request("aio/svc", str(i), timeout=10)
                                          for i in range(4)))

    assert asyncio.run(main()) == [b"re:0", b"re:1", b"re:2", b"re:3"]


def test_a_client_belongs_to_one_event_loop(broker):
    from communicator.common.exceptions import ProtocolValidationError, Status
    from communicator.protocols.mqtt import AsyncMQTTProtocol

    mqtt = AsyncMQTTProtocol(_config(broker))
    asyncio.run(mqtt.connect())
    try:
        with pytest.raises(ProtocolValidationError) as info:
            asyncio.run(mqtt.publish("aio/x", "y"))
        assert info.value.status == Status.INVALID_STATE
    finally:
        mqtt.sync.close()


def test_bad_arguments_raise_before_anything_is_sent(broker):
    from communicator.common.exceptions import ProtocolValidationError, Status
    from communicator.protocols.mqtt import AsyncMQTTProtocol

    async def main():
        async with AsyncMQTTProtocol(_config(broker)) as mqtt:
            with pytest.raises(ProtocolValidationError) as topic:
                await mqtt.publish("bad/#", "x")
            with pytest.raises(ProtocolValidationError) as size:
                mqtt.messages("ok/t", queue_size=0)
            with pytest.raises(ProtocolValidationError) as filter_:
                async with mqtt.messages("bad#"):
                    pass
            return topic.value.status, size.value.status, filter_.value.status

    assert asyncio.run(main()) == (Status.INVALID_TOPIC, Status.INVALID_ARGUMENT,
                                   Status.INVALID_FILTER)


def test_the_documented_asyncio_example_runs(broker):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(PYTHONPATH=str(BINDINGS), EQ1_EXAMPLE_HOST=broker.host,
               EQ1_EXAMPLE_PORT=str(broker.port))
    r = subprocess.run([sys.executable, str(BINDINGS / "examples" / "asyncio_quick_start.py")],
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout == ("Received: [sensors/t1] 21.5\n"
                        "Received: [sensors/t2] 19.0\n")

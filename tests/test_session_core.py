"""The session core against a real mosquitto: messages a broker queued for a persistent session
are held until the application can take them (never acknowledged and dropped), and a slow
consumer under a QoS 0 flood stays within its inbound bound, connected, and loses no QoS 1.

The C program tests/c/eq1session.c is the client under test; tests/harness/rawmqtt.py's
RawClient publishes (no libeq1 on the sending side)."""

from __future__ import annotations

import threading
import time

import pytest

from harness import cprog
from harness.background import Background
from harness.rawmqtt import RawClient


@pytest.fixture(scope="module")
def session_exe(built_library):
    return cprog.compile_c([cprog.repo_root() / "tests/c/eq1session.c"])


def counts(line: str) -> dict[str, int]:
    """ "A 1 B 2" -> {"A": 1, "B": 2}; a leading tag without a number ("SLOW a 1") is skipped."""
    words = line.split()
    words = words[len(words) % 2:]
    return {words[i]: int(words[i + 1]) for i in range(0, len(words), 2)}


def kill_subscriber_and_queue_100(exe, broker, client_id: str, version: int) -> None:
    """A persistent-session subscriber is killed; 100 QoS 1 messages arrive while it is away."""
    holder = Background([exe, broker.host, str(broker.port), client_id, str(version), "hold"])
    holder.wait_for_line("READY", timeout=20)
    holder.kill()
    broker.wait_for_log(f"Client {client_id} closed its connection")
    with RawClient(broker.host, broker.port, "persist-publisher") as publisher:
        publisher.publish_burst("persist/t", 100, qos=1)


@pytest.mark.parametrize("version", [4, 5], ids=["v311", "v5"])
def test_queued_messages_are_held_until_the_application_subscribes(session_exe, broker,
                                                                   version):
    client_id = f"eq1-persist-late-{version}"
    kill_subscriber_and_queue_100(session_exe, broker, client_id, version)
    # The new process subscribes 300 ms after CONNACK: the broker's queued messages arrive
    # before that, match no subscription yet, and must be held, not acknowledged and dropped.
    r = cprog.run(session_exe, [broker.host, broker.port, client_id, version, "resume", 100,
                                300], timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    line = next(line for line in r.stdout.splitlines() if line.startswith("SUBSCRIPTION"))
    assert counts(line) == {"SUBSCRIPTION": 100, "DEFAULT": 0, "UNIQUE": 100}, line


@pytest.mark.parametrize("version", [4, 5], ids=["v311", "v5"])
def test_queued_messages_reach_the_default_message_callback(session_exe, broker, version):
    client_id = f"eq1-persist-default-{version}"
    kill_subscriber_and_queue_100(session_exe, broker, client_id, version)
    r = cprog.run(session_exe, [broker.host, broker.port, client_id, version, "resume", 100,
                                0, "default"], timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    line = next(line for line in r.stdout.splitlines() if line.startswith("SUBSCRIPTION"))
    assert counts(line) == {"SUBSCRIPTION": 0, "DEFAULT": 100, "UNIQUE": 100}, line


INBOUND_MESSAGES = 200
INBOUND_BYTES = 8 << 20
STREAM = 50
FLOOD_SECONDS = 20
FLOOD_CAP = 400_000


@pytest.mark.timeout(240)
def test_qos0_flood_into_a_slow_callback_stays_bounded_connected_and_loses_no_qos1(
        session_exe, broker_factory):
    """Another client floods QoS 0 at full speed for 20 s into a client whose callback sleeps
    10 ms per message (keep-alive 2 s) while a QoS 1 stream runs on the same client. During
    the flood the client's peak RSS stays under its inbound bound + 32 MB and the connection
    stays up; once the callback is fast again, every QoS 1 message has arrived."""
    broker = broker_factory(max_queued_messages=10 * FLOOD_CAP)
    slow = Background([session_exe, broker.host, str(broker.port), "eq1-slow", "4", "slow",
                       str(FLOOD_SECONDS), "150", str(STREAM), str(INBOUND_MESSAGES),
                       str(INBOUND_BYTES)])
    slow.wait_for_line("READY", timeout=20)
    stop = time.monotonic() + FLOOD_SECONDS
    flooded = [0]

    def flood() -> None:
        with RawClient(broker.host, broker.port, "flooder") as flooder:
            payload = b"f" * 256
            # Capped: mosquitto counts the QoS 0 backlog of this unread client against its
            # max_queued_messages and then drops new messages for it, the stream's QoS 1
            # included ("Outgoing messages are being dropped" in its log): the broker's loss,
            # not ours. The broker below allows far more than the cap.
            while time.monotonic() < stop and flooded[0] < FLOOD_CAP:
                flooder.publish_burst("flood/x", 500, qos=0, payload=lambda _: payload)
                flooded[0] += 500

    flooder = threading.Thread(target=flood)
    flooder.start()
    with RawClient(broker.host, broker.port, "streamer") as streamer:
        for i in range(STREAM):
            streamer.publish_burst("stream/t", 1, qos=1, payload=lambda _, i=i: str(i).encode())
            time.sleep(FLOOD_SECONDS / STREAM)
    flooder.join()
    slowed = counts(slow.wait_for_line("SLOWED", timeout=60))
    done = counts(slow.wait_for_line("DONE", timeout=170))
    # The flood outran the callback by far: without the bound the backlog would be huge.
    assert flooded[0] > 100 * FLOOD_SECONDS * 10, flooded[0]
    assert slowed["lost"] == 0 and slowed["connected"] == 1, slowed
    assert slowed["rss_peak_kb"] / 1024 < INBOUND_BYTES / (1 << 20) + 32, slowed
    assert done["stream_unique"] == STREAM and done["lost"] == 0, done

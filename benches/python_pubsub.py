"""One-process Python publish/subscribe benchmark: a publisher client and a subscriber client
in the same interpreter, 64-byte payloads, through a mosquitto the caller started
(scripts/bench-python.sh starts one with max_inflight_messages 20). Compares the communicator
package (libeq1 through ctypes) with paho-mqtt 2.x, interleaved, and prints a markdown table of
messages per second received (median of the repetitions) per QoS.

    python3 benches/python_pubsub.py --port P [--n 20000] [--reps 3] [--libs eq1,paho]

A run publishes --n messages as fast as the library accepts them and ends when the subscriber
has all of them (or after --timeout seconds: QoS 0 may lose some; the table says how many
arrived). Time runs from the first publish to the last message received.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
import uuid
from typing import Callable

PAYLOAD = b"x" * 64


class Counter:
    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.count = 0
        self.last = 0.0
        self.done = threading.Event()

    def hit(self) -> None:
        self.count += 1  # one subscriber thread calls this: no lock needed
        if self.count == self.expected:
            self.last = time.perf_counter()
            self.done.set()


def run_eq1(port: int, qos: int, n: int, timeout: float) -> tuple[float, int]:
    from communicator.protocols.mqtt.mqtt_protocol import MQTTConfig, MQTTProtocol

    topic = f"bench/{uuid.uuid4().hex}"
    counter = Counter(n)
    config = dict(broker_address="127.0.0.1", port=port, timeout=30,
                  max_queued_messages=max(n, 1000))
    sub = MQTTProtocol(MQTTConfig(**config))
    pub = MQTTProtocol(MQTTConfig(**config))
    with sub, pub:
        sub.subscribe(topic, lambda t, p: counter.hit(), qos=qos)
        start = time.perf_counter()
        publish = pub.publish_async
        for _ in range(n):
            publish(topic, PAYLOAD, qos)
        counter.done.wait(timeout)
        end = counter.last if counter.done.is_set() else time.perf_counter()
    sub.close()
    pub.close()
    return counter.count / (end - start), counter.count


def run_paho(port: int, qos: int, n: int, timeout: float) -> tuple[float, int]:
    import paho.mqtt.client as paho

    topic = f"bench/{uuid.uuid4().hex}"
    counter = Counter(n)
    subscribed = threading.Event()

    def make() -> "paho.Client":
        client = paho.Client(paho.CallbackAPIVersion.VERSION2)
        client.max_queued_messages_set(0)  # unlimited (the default)
        return client

    sub, pub = make(), make()
    sub.on_message = lambda c, u, m: counter.hit()
    sub.on_subscribe = lambda c, u, mid, codes, props: subscribed.set()
    for client in (sub, pub):
        client.connect("127.0.0.1", port)
        client.loop_start()
    sub.subscribe(topic, qos)
    subscribed.wait(10)
    start = time.perf_counter()
    publish = pub.publish
    for _ in range(n):
        publish(topic, PAYLOAD, qos)
    counter.done.wait(timeout)
    end = counter.last if counter.done.is_set() else time.perf_counter()
    for client in (sub, pub):
        client.disconnect()
        client.loop_stop()
    return counter.count / (end - start), counter.count


RUNNERS: dict[str, Callable[[int, int, int, float], tuple[float, int]]] = {
    "eq1": run_eq1, "paho": run_paho}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--libs", default="eq1,paho")
    parser.add_argument("--qos", default="0,1,2")
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()
    libs = args.libs.split(",")
    levels = [int(q) for q in args.qos.split(",")]
    rates: dict[tuple[str, int], list[float]] = {}
    received: dict[tuple[str, int], list[int]] = {}
    for rep in range(args.reps):
        for qos in levels:
            for lib in libs:  # interleaved: a drift of the machine hits every library alike
                rate, got = RUNNERS[lib](args.port, qos, args.n, args.timeout)
                rates.setdefault((lib, qos), []).append(rate)
                received.setdefault((lib, qos), []).append(got)
                print(f"rep {rep + 1} qos {qos} {lib}: {rate:,.0f} msg/s ({got}/{args.n})",
                      file=sys.stderr, flush=True)
    compare = "eq1" in libs and "paho" in libs
    print(f"\nPython, one process, publisher + subscriber client, 64 B, {args.n} messages, "
          f"median of {args.reps} (msg/s received; received/sent when short)\n")
    print("| QoS | " + " | ".join(libs) + (" | eq1 / paho |" if compare else " |"))
    print("|---" * (len(libs) + 1 + int(compare)) + "|")
    for qos in levels:
        cells = []
        for lib in libs:
            median = statistics.median(rates[(lib, qos)])
            short = min(received[(lib, qos)])
            cells.append(f"{median:,.0f}" + ("" if short == args.n else f" ({short}/{args.n})"))
        row = f"| {qos} | " + " | ".join(cells)
        if compare:
            ratio = statistics.median(rates[("eq1", qos)]) / statistics.median(
                rates[("paho", qos)])
            row += f" | {ratio:.1f}×"
        print(row + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""MQTT 3.1 (protocol name "MQIsdp", level 3) against the real mosquitto, which still accepts
it: connect, subscribe, and QoS 0/1/2 round trips through the C probe, the broker's log naming
the client's protocol as 3.1 ("p1"), and a client id over 3.1's 23 bytes refused before any
connection is made. The Python binding: tests/python/test_communicator_mqtt31.py."""

from __future__ import annotations

import re

import pytest

from harness import cprog


@pytest.fixture(scope="module")
def probe(built_library):
    return cprog.compile_c([cprog.repo_root() / "tests/c/eq1probe.c"])


def summary(output: str) -> dict[str, str]:
    lines = [l for l in output.splitlines() if l.startswith("SUMMARY")]
    assert lines, f"no SUMMARY line in:\n{output}"
    return dict(kv.split("=", 1) for kv in lines[-1].split()[1:] if "=" in kv)


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_mqtt31_round_trip_at_each_qos_against_mosquitto(probe, broker, qos):
    mark = broker.log_mark()
    r = cprog.run(probe, ["--host", broker.host, "--port", broker.port, "--version", 3,
                          "--client-id", f"eq1-mqtt31-q{qos}", "--qos", qos, "--count", 500,
                          "--topic", f"v31/{qos}", "roundtrip"], timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    s = summary(r.stdout)
    assert s["missing"] == "0", s
    assert s["granted"] == str(qos), s
    if qos == 2:
        assert s["duplicates"] == "0", s
    # mosquitto logs "New client connected from ... as <id> (p1, c1, k60)": p1 is MQTT 3.1
    # (p2 would be 3.1.1, p5 5.0).
    log = broker.wait_for_log(f"as eq1-mqtt31-q{qos} (p1,", since=mark)
    assert re.search(rf"as eq1-mqtt31-q{qos} \(p1, c1, k\d+\)", log), log


def test_mqtt31_client_id_longer_than_23_bytes_is_refused(probe, broker):
    r = cprog.run(probe, ["--host", broker.host, "--port", broker.port, "--version", 3,
                          "--client-id", "x" * 24, "connect"], timeout=60)
    assert r.returncode != 0, r.stdout
    assert "EQ1_STATUS_INVALID_CLIENT_ID" in r.stdout + r.stderr, r.stdout + r.stderr
    assert "23" in r.stdout + r.stderr

"""The network transports from C against real parts: the argument checks of the new options
functions (NULL, invalid UTF-8, bad URIs) plainly and under valgrind, round trips over
WebSockets, a Unix socket and an HTTP proxy from C (under valgrind too), and a QoS 1 stream over
WebSockets whose connections a proxy cuts, counted message by message; the C++ wrapper's
transport options (tests/cpp/test_cpp_transports.cpp).
The Python binding's transport tests are in tests/python/test_communicator_transports.py."""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

import pytest

from harness import cprog
from harness.background import Background
from harness.netproxies import PROXY_PASSWORD, PROXY_USER, TinyProxy
from harness.ports import free_port

C_DIR = Path(__file__).resolve().parent / "c"


@pytest.fixture(scope="module")
def options_prog(built_library) -> Path:
    return cprog.compile_c([C_DIR / "test_transport_options.c"])


@pytest.fixture(scope="module")
def stream_exe(built_library) -> Path:
    return cprog.compile_c([C_DIR / "eq1stream.c"])


@pytest.fixture
def net_broker(broker_factory):
    """A broker with a plain, a websockets (ws_port) and a Unix-socket (socket_path) listener."""
    ws_port = free_port()
    short = Path(tempfile.mkdtemp(prefix="eq1u"))  # sun_path is 108 bytes at most
    path = short / "mqtt.sock"
    b = broker_factory(extra_conf=f"listener {ws_port} 127.0.0.1\nprotocol websockets\n"
                                  f"listener 0 {path}")
    b.ws_port, b.socket_path = ws_port, path
    yield b
    shutil.rmtree(short, ignore_errors=True)


def _checks(stdout: str) -> tuple[int, int]:
    m = re.search(r"^SUMMARY: (\d+) checks, (\d+) failed$", stdout, re.M)
    assert m, stdout[-4000:]
    return int(m.group(1)), int(m.group(2))


@pytest.mark.parametrize("valgrind", [False, True], ids=["plain", "valgrind"])
@pytest.mark.timeout(300)
def test_transport_option_checks_and_round_trips_from_c(options_prog, net_broker, tmp_path,
                                                        valgrind):
    tiny = TinyProxy(tmp_path / "tinyproxy", [net_broker.ws_port])
    try:
        proxy = f"http://{PROXY_USER}:{PROXY_PASSWORD}@127.0.0.1:{tiny.port}"
        ws = f"ws://127.0.0.1:{net_broker.ws_port}/mqtt"
        r = cprog.run(options_prog, [net_broker.host, net_broker.port, ws,
                                     f"unix://{net_broker.socket_path}", "--proxy", proxy, ws],
                      valgrind=valgrind, timeout=240)
    finally:
        tiny.close()
    print(r.stdout[-6000:])
    checks, failed = _checks(r.stdout)
    assert failed == 0 and r.returncode == 0, r.stdout[-6000:] + r.stderr[-6000:]
    assert checks >= 60, f"only {checks} checks ran"
    for needle in ("ok   - set_broker_uri(invalid UTF-8)", "ok   - set_proxy(https scheme)",
                   f"ok   - received over unix://{net_broker.socket_path}",
                   f"ok   - received over {ws}",
                   f"ok   - received over mqtt://127.0.0.1:{net_broker.port}"):
        assert needle in r.stdout
    assert r.stdout.count(f"ok   - received over {ws}") == 2
    assert f"CONNECT 127.0.0.1:{net_broker.ws_port}" in tiny.log_text()
    if valgrind:
        cprog.assert_valgrind_clean(r)


def _numbers(line: str) -> dict[str, int]:
    pairs = (kv.split("=", 1) for kv in line.split()[1:] if "=" in kv)
    return {k: int(v) for k, v in pairs if v.lstrip("-").isdigit()}


@pytest.mark.timeout(240)
def test_cuts_during_a_qos1_websocket_stream_lose_nothing(stream_exe, net_broker,
                                                          proxy_factory):
    cutter = proxy_factory("127.0.0.1", net_broker.ws_port)
    total, cuts = 5000, 4
    uri = f"ws://127.0.0.1:{cutter.port}/mqtt"
    with Background([stream_exe, "--brokers", uri, "--id", "ws-cuts", "--qos", "1",
                     "--persistent", "--reconnect-min", "50", "--reconnect-max", "400"],
                    stdin=True) as stream:
        stream.wait_for_line("READY", timeout=20)
        since = stream.mark()
        stream.send(f"publish {total} 500")
        for cut in range(1, cuts + 1):
            stream.wait_for_line("PROGRESS", timeout=60, since=since,
                                 where=lambda line, n=cut: _numbers(line).get("published", -1)
                                 >= n * total // (cuts + 2))
            mark = stream.mark()
            assert cutter.cut() > 0, "the proxy had no connection to cut"
            # The next cut only once the publisher is back over a new WebSocket.
            stream.wait_for_line("CONNECTION role=pub state=1", timeout=30, since=mark)
        stream.wait_for_line("PUBLISHED", timeout=120, since=since)
        delivered = _numbers(stream.ask("wait_delivered 90000", "DELIVERED", 120))
        received = _numbers(stream.ask(f"wait_received {total} 90000", "RECEIVED", 120))
        mark = stream.mark()
        stream.send("stats")
        stats = _numbers(stream.wait_for_line("STATS role=pub", 10, since=mark))
    assert delivered["ok"] == total and delivered["failed"] == 0, delivered
    assert received["missing"] == 0, received
    assert stats["reconnects"] >= cuts, stats
    assert cutter.accepted >= 2 * (cuts + 1), "publisher and subscriber went over the proxy"


def test_cpp_wrapper_transport_options_and_round_trips(built_library, net_broker):
    exe = cprog.compile_cxx([Path(__file__).resolve().parent / "cpp" / "test_cpp_transports.cpp"],
                            extra_flags=("-I", str(cprog.repo_root() / "bindings" / "cpp")))
    ws = f"ws://127.0.0.1:{net_broker.ws_port}/mqtt"
    unix = f"unix://{net_broker.socket_path}"
    r = cprog.run(exe, [net_broker.host, net_broker.port, ws, unix], timeout=120)
    print(r.stdout)
    assert r.returncode == 0, r.stdout + r.stderr
    assert ", 0 failed" in r.stdout
    for check in ("every transport option chains",
                  "broker_uri(no scheme) throws ValidationError INVALID_ARGUMENT",
                  "websocket_header(Host) throws ValidationError INVALID_ARGUMENT",
                  f"round trip over mqtt://127.0.0.1:{net_broker.port}",
                  f"round trip over {ws}", f"round trip over {unix}"):
        assert f"ok   - {check}" in r.stdout, r.stdout

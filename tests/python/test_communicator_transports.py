"""The network transports through the Python binding, against real parts: mosquitto's
websockets listener (ws:// and wss:// with the test PKI), its Unix-socket listener, tinyproxy
(HTTP CONNECT with BasicAuth), microsocks (SOCKS5 with user/password), and a socket bound to
127.0.0.2 as the broker sees it."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from harness.broker import TEST_PASSWORD, TEST_USER
from harness.netproxies import PROXY_PASSWORD, PROXY_USER, MicroSocks, TinyProxy
from harness.ports import free_port

from communicator import MQTTConfig
from communicator.common.exceptions import (
    ProtocolAuthenticationError,
    ProtocolConnectionError,
    ProtocolValidationError,
    Status,
)

CREDS = dict(username=TEST_USER, password=TEST_PASSWORD)


# ---------------------------------------------------------------- fixtures

def _ws_listener(port: int, tls: dict | None = None) -> str:
    # Debian's mosquitto 2.0.11 binds a websockets listener to every interface whatever the
    # address says; the clients below connect to it on 127.0.0.1 only.
    lines = [f"listener {port} 127.0.0.1", "protocol websockets"]
    if tls:
        lines += [f"certfile {tls['cert']}", f"keyfile {tls['key']}", f"cafile {tls['ca']}"]
    return "\n".join(lines)


@pytest.fixture
def ws_broker(broker_factory):
    """An anonymous broker with a plain listener (port) and a websockets one (ws_port)."""
    ws_port = free_port()
    b = broker_factory(extra_conf=_ws_listener(ws_port))
    b.ws_port = ws_port
    return b


@pytest.fixture
def wss_broker(broker_factory, pki):
    """A broker with users, a plain listener and a websockets-over-TLS one (wss_port)."""
    wss_port = free_port()
    tls = dict(cert=pki.server_crt, key=pki.server_key, ca=pki.ca_crt)
    b = broker_factory(users={TEST_USER: TEST_PASSWORD}, allow_anonymous=False,
                       extra_conf=_ws_listener(wss_port, tls))
    b.wss_port = wss_port
    return b


@pytest.fixture
def unix_broker(broker_factory):
    """A broker with a plain listener and a Unix-socket one (socket_path)."""
    # sun_path holds 108 bytes: pytest's tmp_path can be longer than that.
    short = Path(tempfile.mkdtemp(prefix="eq1u"))
    path = short / "mqtt.sock"
    b = broker_factory(extra_conf=f"listener 0 {path}")
    b.socket_path = path
    yield b
    shutil.rmtree(short, ignore_errors=True)


def _round_trip(mqtt, inbox, topic: str, qos: int, payload: bytes = b"over the wire") -> None:
    mqtt.connect()
    mqtt.subscribe(topic, inbox, qos=qos)
    mqtt.publish(topic, payload, qos=qos)
    assert inbox.wait_for(1) == [(topic, payload)]


# ---------------------------------------------------------------- WebSockets

@pytest.mark.parametrize("qos", [0, 1, 2])
@pytest.mark.parametrize("version", [4, 5], ids=["v311", "v5"])
def test_websocket_round_trip_at_each_qos(make_client, ws_broker, inbox, qos, version):
    mqtt = make_client(broker_address="127.0.0.1", port=ws_broker.ws_port,
                       transport="websockets", ws_path="/mqtt", protocol_version=version)
    since = ws_broker.log_mark()
    _round_trip(mqtt, inbox, f"ws/q{qos}", qos)
    # Many packets of both directions went through WebSocket frames, in order.
    payloads = [f"m{i}".encode() * (i + 1) for i in range(50)]
    for p in payloads:
        mqtt.publish(f"ws/q{qos}", p, qos=qos)
    assert [p for _, p in inbox.wait_for(51)][1:] == payloads
    assert "New client connected" in ws_broker.log_text(since=since)


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_wss_round_trip_with_the_test_pki(make_client, wss_broker, pki, inbox, qos):
    mqtt = make_client(broker_address="localhost", port=wss_broker.wss_port,
                       transport="websockets", ca_certs=pki.ca_crt, **CREDS)
    _round_trip(mqtt, inbox, f"wss/q{qos}", qos)


def test_wss_verifies_the_server_certificate_like_mqtts(make_client, wss_broker, pki):
    mqtt = make_client(broker_address="localhost", port=wss_broker.wss_port,
                       transport="websockets", ca_certs=pki.other_ca_crt, reconnect=False,
                       **CREDS)
    with pytest.raises(ProtocolConnectionError) as info:
        mqtt.connect()
    assert info.value.status == Status.TLS_UNKNOWN_ISSUER


def test_a_large_message_round_trips_over_websockets(make_client, ws_broker, inbox):
    mqtt = make_client(broker_address=f"ws://127.0.0.1:{ws_broker.ws_port}/")
    # Not bigger: mosquitto 2.0.11's websockets listener sends about 40 KB/s of a large
    # message (measured with a raw socket client too), so megabytes would take minutes.
    big = os.urandom(256 * 1024)
    _round_trip(mqtt, inbox, "ws/big", 1, big)


def test_websocket_request_carries_the_path_headers_and_subprotocol(make_client, ws_broker,
                                                                     proxy_factory, inbox):
    recorder = proxy_factory("127.0.0.1", ws_broker.ws_port)
    recorder.record(True)
    mqtt = make_client(broker_address=f"ws://127.0.0.1:{recorder.port}/mqtt?token=abc",
                       ws_headers={"Authorization": "Bearer t0k3n", "X-Device": "eq1"})
    _round_trip(mqtt, inbox, "ws/headers", 1)
    request = recorder.client_bytes()[0].split(b"\r\n\r\n", 1)[0].decode()
    lines = request.split("\r\n")
    assert lines[0] == "GET /mqtt?token=abc HTTP/1.1", request
    headers = {k.lower(): v for k, v in (line.split(": ", 1) for line in lines[1:])}
    assert headers["sec-websocket-protocol"] == "mqtt"
    assert headers["authorization"] == "Bearer t0k3n"
    assert headers["x-device"] == "eq1"
    assert headers["upgrade"].lower() == "websocket"


def test_websocket_to_a_plain_mqtt_listener_fails_with_its_status(make_client, broker):
    mqtt = make_client(broker_address=f"ws://127.0.0.1:{broker.port}/mqtt", reconnect=False)
    with pytest.raises(ProtocolConnectionError) as info:
        mqtt.connect()
    assert info.value.status == Status.WEBSOCKET_FAILED, info.value


def test_a_reserved_websocket_header_is_refused(make_client, ws_broker):
    with pytest.raises(ProtocolValidationError) as info:
        make_client(broker_address=f"ws://127.0.0.1:{ws_broker.ws_port}/",
                    ws_headers={"Sec-WebSocket-Protocol": "other"})
    assert info.value.status == Status.INVALID_ARGUMENT


# ---------------------------------------------------------------- broker URIs

def test_a_failover_list_mixes_transports(make_client, ws_broker, unix_broker, inbox):
    dead = free_port()
    mqtt = make_client(broker_address=f"unix://{unix_broker.socket_path}.missing",
                       brokers=[f"mqtt://127.0.0.1:{dead}",
                                f"ws://127.0.0.1:{ws_broker.ws_port}/mqtt"])
    since = ws_broker.log_mark()
    _round_trip(mqtt, inbox, "uri/failover", 1)
    assert "New client connected" in ws_broker.log_text(since=since)


def test_a_broker_uri_is_checked_when_the_client_is_made(make_client):
    with pytest.raises(ProtocolValidationError) as info:
        make_client(broker_address="mqtt://host:99999")
    assert info.value.status == Status.INVALID_ARGUMENT
    assert "port" in info.value.detail
    with pytest.raises(ProtocolValidationError):
        MQTTConfig(broker_address="gopher://host")
    with pytest.raises(ProtocolValidationError):
        MQTTConfig(transport="carrier-pigeon")
    with pytest.raises(ProtocolValidationError):
        MQTTConfig(brokers=["nope://x"])


# ---------------------------------------------------------------- Unix sockets

@pytest.mark.parametrize("qos", [1, 2])
def test_unix_socket_listener_round_trip(make_client, unix_broker, inbox, qos):
    mqtt = make_client(broker_address=f"unix://{unix_broker.socket_path}")
    since = unix_broker.log_mark()
    _round_trip(mqtt, inbox, f"unix/q{qos}", qos)
    log = unix_broker.log_text(since=since)
    # mosquitto names no address for a Unix-socket client; a TCP one shows 127.0.0.1.
    connected = [line for line in log.splitlines() if "New client connected from" in line]
    assert connected and "127.0.0.1" not in connected[0], log


def test_a_unix_socket_nobody_listens_on_is_refused(make_client, tmp_path):
    mqtt = make_client(broker_address=f"unix://{tmp_path}/none.sock", reconnect=False)
    with pytest.raises(ProtocolConnectionError) as info:
        mqtt.connect()
    assert info.value.status == Status.CONNECTION_REFUSED


# ---------------------------------------------------------------- HTTP CONNECT (tinyproxy)

@pytest.fixture
def http_proxy_for(tmp_path):
    made: list[TinyProxy] = []

    def make(*ports: int, auth: bool = True) -> TinyProxy:
        p = TinyProxy(tmp_path / f"tinyproxy{len(made)}", list(ports), auth=auth)
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()


def _http_proxy_uri(p: TinyProxy, password: str = PROXY_PASSWORD) -> str:
    return f"http://{PROXY_USER}:{password}@127.0.0.1:{p.port}"


@pytest.mark.parametrize("transport", ["tcp", "websockets"])
def test_http_connect_proxy_with_basic_auth(make_client, ws_broker, http_proxy_for, inbox,
                                            transport):
    port = ws_broker.ws_port if transport == "websockets" else ws_broker.port
    tiny = http_proxy_for(port)
    mqtt = make_client(broker_address="127.0.0.1", port=port, transport=transport,
                       proxy=_http_proxy_uri(tiny))
    _round_trip(mqtt, inbox, f"http-proxy/{transport}", 1)
    assert f"CONNECT 127.0.0.1:{port}" in tiny.log_text(), tiny.log_text()[-2000:]


@pytest.mark.parametrize("transport", ["tcp", "websockets"])
def test_tls_through_an_http_proxy(make_client, tls_broker, wss_broker, pki, http_proxy_for,
                                   inbox, transport):
    port = wss_broker.wss_port if transport == "websockets" else tls_broker.port
    tiny = http_proxy_for(port)
    mqtt = make_client(broker_address="localhost", port=port, transport=transport,
                       ca_certs=pki.ca_crt, proxy=_http_proxy_uri(tiny), **CREDS)
    _round_trip(mqtt, inbox, f"https-proxy/{transport}", 1)
    assert f"CONNECT localhost:{port}" in tiny.log_text(), tiny.log_text()[-2000:]


def test_wrong_http_proxy_password_has_its_own_status(make_client, broker, http_proxy_for):
    tiny = http_proxy_for(broker.port)
    for proxy in (_http_proxy_uri(tiny, "wrong"), f"http://127.0.0.1:{tiny.port}"):
        mqtt = make_client(broker=broker, proxy=proxy, reconnect=False)
        with pytest.raises(ProtocolAuthenticationError) as info:
            mqtt.connect()
        assert info.value.status == Status.PROXY_AUTH_FAILED, info.value
        assert "401" in info.value.detail or "407" in info.value.detail, info.value
        assert "wrong" not in info.value.detail.replace("wrong proxy", ""), "password shown"


def test_http_proxy_refusing_the_target_has_its_own_status(make_client, broker,
                                                           http_proxy_for):
    tiny = http_proxy_for(broker.port + 1 if broker.port < 65535 else broker.port - 1)
    mqtt = make_client(broker=broker, proxy=_http_proxy_uri(tiny), reconnect=False)
    with pytest.raises(ProtocolConnectionError) as info:
        mqtt.connect()
    assert info.value.status == Status.PROXY_FAILED, info.value
    assert "403" in info.value.detail


def test_proxy_from_the_environment_and_no_proxy(make_client, broker, http_proxy_for, inbox,
                                                 monkeypatch):
    tiny = http_proxy_for(broker.port)
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "HTTP_PROXY",
                 "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", _http_proxy_uri(tiny))
    via_env = make_client(broker=broker, proxy_from_env=True)
    _round_trip(via_env, inbox, "env/proxied", 1)
    tunnels = tiny.log_text().count(f"CONNECT 127.0.0.1:{broker.port}")
    assert tunnels == 1, tiny.log_text()[-2000:]

    monkeypatch.setenv("no_proxy", "localhost,127.0.0.1")
    direct = make_client(broker=broker, proxy_from_env=True)
    assert direct.connect()
    not_opted_in = make_client(broker=broker)
    monkeypatch.delenv("no_proxy")
    assert not_opted_in.connect()
    assert tiny.log_text().count(f"CONNECT 127.0.0.1:{broker.port}") == tunnels

    monkeypatch.setenv("http_proxy", "gopher://nowhere")
    with pytest.raises(ProtocolValidationError) as info:
        make_client(broker=broker, proxy_from_env=True)
    assert "http_proxy" in info.value.detail


# ---------------------------------------------------------------- SOCKS5 (microsocks)

@pytest.fixture
def socks(tmp_path):
    s = MicroSocks(tmp_path / "socks")
    yield s
    s.close()


def _socks_uri(s: MicroSocks, scheme: str = "socks5", password: str = PROXY_PASSWORD) -> str:
    return f"{scheme}://{PROXY_USER}:{password}@127.0.0.1:{s.port}"


@pytest.mark.parametrize("transport", ["tcp", "websockets"])
@pytest.mark.parametrize("scheme", ["socks5", "socks5h"])
def test_socks5_proxy_with_user_and_password(make_client, ws_broker, socks, inbox, transport,
                                             scheme):
    port = ws_broker.ws_port if transport == "websockets" else ws_broker.port
    mqtt = make_client(broker_address="localhost", port=port, transport=transport,
                       proxy=_socks_uri(socks, scheme))
    since = ws_broker.log_mark()
    _round_trip(mqtt, inbox, f"socks/{transport}/{scheme}", 1)
    assert "New client connected" in ws_broker.log_text(since=since)
    # microsocks logs each tunnel it opens.
    assert "connected to" in socks.output() or "127.0.0.1" in socks.output(), socks.output()


def test_tls_through_a_socks5_proxy(make_client, tls_broker, pki, socks, inbox):
    mqtt = make_client(broker_address="localhost", port=tls_broker.port, ca_certs=pki.ca_crt,
                       proxy=_socks_uri(socks, "socks5h"), **CREDS)
    _round_trip(mqtt, inbox, "socks/tls", 2)


def test_wrong_socks5_password_has_its_own_status(make_client, broker, socks):
    for proxy in (_socks_uri(socks, password="wrong"), f"socks5://127.0.0.1:{socks.port}"):
        mqtt = make_client(broker=broker, proxy=proxy, reconnect=False)
        with pytest.raises(ProtocolAuthenticationError) as info:
            mqtt.connect()
        assert info.value.status == Status.PROXY_AUTH_FAILED, info.value


def test_socks5_proxy_that_cannot_reach_the_target_has_its_own_status(make_client, socks):
    dead = free_port()
    mqtt = make_client(broker_address="127.0.0.1", port=dead, proxy=_socks_uri(socks),
                       reconnect=False)
    with pytest.raises(ProtocolConnectionError) as info:
        mqtt.connect()
    assert info.value.status == Status.PROXY_FAILED, info.value
    assert "SOCKS5 reply" in info.value.detail


def test_an_unreachable_proxy_is_a_proxy_failure(make_client, broker):
    mqtt = make_client(broker=broker, proxy=f"socks5://127.0.0.1:{free_port()}",
                       reconnect=False)
    with pytest.raises(ProtocolConnectionError) as info:
        mqtt.connect()
    assert info.value.status == Status.PROXY_FAILED, info.value


# ---------------------------------------------------------------- binding

def test_bind_address_is_the_peer_address_the_broker_sees(make_client, broker, inbox):
    mqtt = make_client(broker=broker, bind_address="127.0.0.2", client_id="bound-client")
    since = broker.log_mark()
    _round_trip(mqtt, inbox, "bind/address", 1)
    log = broker.log_text(since=since)
    assert "New client connected from 127.0.0.2:" in log, log
    assert "New client connected from 127.0.0.1:" not in log, log


def test_a_bind_address_of_another_host_fails_with_its_status(make_client, broker):
    # 192.0.2.1 (TEST-NET-1) is no address of this host: bind() fails, nothing is sent.
    mqtt = make_client(broker=broker, bind_address="192.0.2.1", reconnect=False)
    with pytest.raises(ProtocolValidationError) as info:
        mqtt.connect()
    assert info.value.status == Status.BIND_FAILED, info.value


@pytest.mark.skipif(os.geteuid() != 0, reason="SO_BINDTODEVICE needs root (CAP_NET_RAW)")
def test_bind_interface(make_client, broker, inbox):
    mqtt = make_client(broker=broker, bind_interface="lo")
    _round_trip(mqtt, inbox, "bind/interface", 1)
    missing = make_client(broker=broker, bind_interface="eq1nosuch0", reconnect=False)
    with pytest.raises(ProtocolValidationError) as info:
        missing.connect()
    assert info.value.status == Status.BIND_FAILED
    assert "eq1nosuch0" in info.value.detail

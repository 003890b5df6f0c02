"""pytest fixtures shared by all libeq1 tests: PKI, private brokers, proxies, the built library."""

from __future__ import annotations

import itertools

import pytest

from harness import cprog
from harness.broker import TEST_PASSWORD, TEST_USER, Broker
from harness.certs import generate_pki
from harness.modbus_server import ModbusServer
from harness.proxy import TcpProxy
from harness.watchdog import DEFAULT_TIMEOUT, time_limit


def pytest_configure(config):
    config.addinivalue_line("markers", "timeout(seconds): per-test wall-clock limit "
                            f"(default {DEFAULT_TIMEOUT:.0f}s, env EQ1_TEST_TIMEOUT)")
    config.addinivalue_line("markers", "slow: takes more than a few seconds")
    config.addinivalue_line("markers", "valgrind: runs a program under valgrind")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    # pytest-timeout, when installed, owns the timeout marker; do not double up.
    if item.config.pluginmanager.hasplugin("timeout"):
        yield
        return
    marker = item.get_closest_marker("timeout")
    seconds = float(marker.args[0]) if marker and marker.args else DEFAULT_TIMEOUT
    with time_limit(seconds, item.nodeid):
        yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    # Lets fixtures see at teardown whether the test failed (to dump broker logs).
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)


def _failed(request) -> bool:
    return any(getattr(getattr(request.node, f"rep_{w}", None), "failed", False)
               for w in ("setup", "call"))


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    """The test PKI (harness.certs.Pki), generated once per session."""
    return generate_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def built_library():
    """`cargo build --release` once per session; returns the library directory."""
    return cprog.build_library()


@pytest.fixture
def broker_factory(request, tmp_path):
    """make(**Broker kwargs) -> started Broker; all are stopped at teardown."""
    made: list[Broker] = []
    counter = itertools.count()

    def make(**kwargs) -> Broker:
        kwargs.setdefault("workdir", tmp_path / f"broker{next(counter)}")
        b = Broker(**kwargs)
        made.append(b)
        return b

    yield make
    failed = _failed(request)
    for b in made:
        if failed:
            print(f"\n===== {b!r} log (tail) =====\n{b.log_text()[-6000:]}")
        b.close()


@pytest.fixture
def broker(broker_factory) -> Broker:
    """Anonymous plain-TCP broker on 127.0.0.1:<broker.port>."""
    return broker_factory()


@pytest.fixture
def auth_broker(broker_factory) -> Broker:
    """Broker with a password file (TEST_USER/TEST_PASSWORD); anonymous refused."""
    return broker_factory(users={TEST_USER: TEST_PASSWORD}, allow_anonymous=False)


@pytest.fixture
def tls_broker_factory(broker_factory, pki):
    """make(cert=, key=, require_certificate=, ca=, **Broker kwargs) -> TLS Broker.

    Defaults: server.crt/key, ca.crt, no client cert required, TEST_USER/TEST_PASSWORD
    with anonymous refused (pass users=None, allow_anonymous=True to change).
    """
    def make(cert=None, key=None, require_certificate=False, ca=None, **kwargs) -> Broker:
        kwargs.setdefault("users", {TEST_USER: TEST_PASSWORD})
        kwargs.setdefault("allow_anonymous", False)
        tls = dict(cert=cert or pki.server_crt, key=key or pki.server_key,
                   ca=ca or pki.ca_crt, require_certificate=require_certificate)
        return broker_factory(tls=tls, **kwargs)

    return make


@pytest.fixture
def tls_broker(tls_broker_factory) -> Broker:
    """TLS broker with server.crt (localhost/127.0.0.1/::1), users, anonymous refused."""
    return tls_broker_factory()


@pytest.fixture
def proxy_factory():
    """make(target_host, target_port) -> TcpProxy; all closed at teardown."""
    made: list[TcpProxy] = []

    def make(target_host: str, target_port: int) -> TcpProxy:
        p = TcpProxy(target_host, target_port)
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()


@pytest.fixture
def proxy(proxy_factory, broker) -> TcpProxy:
    """A TcpProxy in front of the `broker` fixture: connect clients to 127.0.0.1:proxy.port."""
    return proxy_factory(broker.host, broker.port)


@pytest.fixture
def modbus_server_factory():
    """make(mode="tcp"|"rtu", ...) -> started pymodbus ModbusServer; all killed at teardown."""
    made: list[ModbusServer] = []

    def make(**kwargs) -> ModbusServer:
        server = ModbusServer(**kwargs)
        made.append(server)
        return server

    yield make
    for server in made:
        server.stop()


@pytest.fixture
def modbus_server(modbus_server_factory) -> ModbusServer:
    """pymodbus's Modbus TCP server on 127.0.0.1:<port> with harness.modbus_server's map."""
    return modbus_server_factory()


@pytest.fixture
def echo_server_factory(request):
    """make(framing="u16"|"u32"|"raw"|"delimiter", delimiter=b"\\n", port=None, tls=()) ->
    started harness.tcp_echo_server.EchoServer (tls = (cert, key[, client_ca])); all killed
    at teardown (their event lines printed when the test failed)."""
    from harness.tcp_echo_server import EchoServer

    made: list[EchoServer] = []

    def make(**kwargs) -> EchoServer:
        server = EchoServer(**kwargs)
        made.append(server)
        return server

    yield make
    failed = _failed(request)
    for server in made:
        if failed:
            print(f"\n===== echo server {server.port} events =====\n"
                  + "\n".join(server.lines()[-200:]))
        server.kill()


@pytest.fixture
def echo_server(echo_server_factory):
    """The echo/framing server with u16 length-prefixed frames on 127.0.0.1:<port>."""
    return echo_server_factory()

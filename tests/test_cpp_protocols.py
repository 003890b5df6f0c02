"""The C++ wrapper's protocols beyond MQTT, run against real peers: eq1::ModbusClient against
pymodbus's server (every function code, an exception response, a refused connect),
eq1::SerialPort over a socat pty pair, and eq1::Protocol loading the echo plugin
(tests/c/plugin_echo.c). tests/cpp/peers/cpp_protocols.cpp, plain and under valgrind."""

from __future__ import annotations

import pytest

from harness import cprog
from harness.serial_pty import PtyPair

REPO = cprog.repo_root()
CPP_INCLUDE = ("-I", str(REPO / "bindings" / "cpp"))
VALGRIND = [False, pytest.param(True, marks=pytest.mark.valgrind)]


@pytest.fixture(scope="module")
def program(built_library):
    return cprog.compile_cxx([REPO / "tests" / "cpp" / "peers" / "cpp_protocols.cpp"],
                             extra_flags=CPP_INCLUDE)


def run(program, args, valgrind: bool):
    r = cprog.run(program, args, timeout=280, valgrind=valgrind)
    cprog.assert_all_passed(r)
    if valgrind:
        cprog.assert_valgrind_clean(r)
    return r


@pytest.mark.parametrize("valgrind", VALGRIND, ids=["plain", "valgrind"])
@pytest.mark.timeout(300)
def test_cpp_modbus_client_against_pymodbus(program, modbus_server, valgrind):
    r = run(program, ["modbus", modbus_server.host, modbus_server.port], valgrind)
    for check in ("0x03 read holding registers are the server's",
                  "0x17 read/write multiple registers",
                  "an address outside the map is illegal data address",
                  "connect to a closed port"):
        assert f"ok   - {check}" in r.stdout, r.stdout


@pytest.mark.parametrize("valgrind", VALGRIND, ids=["plain", "valgrind"])
@pytest.mark.timeout(300)
def test_cpp_serial_port_over_a_pty_pair(program, tmp_path, valgrind):
    pair = PtyPair(tmp_path, "line")
    try:
        r = run(program, ["serial", pair.a, pair.b], valgrind)
    finally:
        pair.stop()
    for check in ("A -> B: all 256 byte values", "request gets the echo",
                  "receive with nothing arriving times out", "a device that does not exist",
                  'Protocol("serial") sends to the other end'):
        assert f"ok   - {check}" in r.stdout, r.stdout


@pytest.mark.parametrize("valgrind", VALGRIND, ids=["plain", "valgrind"])
@pytest.mark.timeout(300)
def test_cpp_protocol_loads_the_echo_plugin(program, tmp_path, valgrind):
    echo = cprog.compile_plugin(REPO / "tests" / "c" / "plugin_echo.c", tmp_path / "libecho.so")
    r = run(program, ["plugin", echo], valgrind)
    for check in ("load_plugin returns the plugin's name", "receive returns what was sent",
                  "loading it again: the name is taken"):
        assert f"ok   - {check}" in r.stdout, r.stdout

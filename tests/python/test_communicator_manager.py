"""ProtocolManager as a registry of protocol kinds: the built-ins created by name against real
peers (mosquitto, a socat pty pair, pymodbus's server), factories registered at run time, the
statuses of an unknown name, a taken name and a bad factory; and a third-party protocol declared
in the `communicator.protocols` entry-point group of a package installed into a fresh venv
together with the communicator wheel."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from communicator.common.exceptions import ProtocolValidationError, Status
from communicator.interfaces.protocol import ReqResProtocol
from communicator.manager import ProtocolManager
from harness.modbus_server import holding
from harness.serial_pty import PtyPair

BUILTINS = ["modbus-rtu", "modbus-tcp", "mqtt", "serial", "tcp"]


class Loopback(ReqResProtocol):
    """A third-party style protocol for the run-time registry (pure logic, no peer)."""

    def __init__(self, prefix: bytes = b"") -> None:
        self.prefix, self.pending, self.connected = prefix, b"", False

    def connect(self) -> bool:
        self.connected = True
        return True

    def disconnect(self) -> None:
        self.connected = False

    def send(self, data: bytes) -> bool:
        self.pending += self.prefix + data
        return True

    def receive(self, buffer_size: int = 1024) -> bytes:
        out, self.pending = self.pending[:buffer_size], self.pending[buffer_size:]
        return out


def test_available_lists_every_builtin_without_importing_them():
    before = set(sys.modules)
    names = ProtocolManager().available()
    assert [n for n in names if n in BUILTINS] == BUILTINS
    loaded = set(sys.modules) - before
    assert not {m for m in loaded if m.startswith("communicator.protocols.")}, loaded


def test_create_mqtt_by_name_round_trips_through_the_broker(broker, inbox):
    from communicator.protocols.mqtt.mqtt_protocol import MQTTConfig, MQTTProtocol

    manager = ProtocolManager()
    by_object = manager.create("mqtt", MQTTConfig(broker_address=broker.host, port=broker.port))
    by_mapping = manager.create("mqtt", {"broker_address": broker.host, "port": broker.port},
                                register_as="second")
    assert isinstance(by_object, MQTTProtocol) and isinstance(by_mapping, MQTTProtocol)
    assert manager.get("second") is by_mapping
    try:
        by_object.connect()
        by_mapping.connect()
        by_mapping.subscribe("manager/created", inbox, qos=1)
        by_object.publish("manager/created", "made by name", qos=1)
        assert inbox.wait_for(1) == [("manager/created", b"made by name")]
    finally:
        by_object.close()
        by_mapping.close()


def test_create_serial_by_name_over_a_pty_pair(tmp_path):
    from communicator.protocols.serial import SerialConfig, SerialProtocol

    pair = PtyPair(tmp_path, "line")
    manager = ProtocolManager()
    a = manager.create("serial", {"device": pair.a, "baud": 115200})
    b = manager.create("serial", SerialConfig(device=pair.b, baud=115200))
    try:
        assert isinstance(a, SerialProtocol) and isinstance(b, SerialProtocol)
        a.connect()
        b.connect()
        a.send(b"\x00\xffby name")
        got = b""
        while len(got) < 9:
            got += b.receive(64, timeout_ms=5000)
        assert got == b"\x00\xffby name"
    finally:
        a.close()
        b.close()
        pair.stop()


def test_create_modbus_by_name(modbus_server, tmp_path):
    from communicator.protocols.modbus import ModbusProtocol

    manager = ProtocolManager()
    client = manager.create("modbus-tcp", host=modbus_server.host, port=modbus_server.port,
                            timeout_ms=2000)
    try:
        assert isinstance(client, ModbusProtocol)
        client.connect()
        assert client.read_holding_registers(0, 3) == [holding(i) for i in range(3)]
    finally:
        client.close()
    rtu = manager.create("modbus-rtu", device=str(tmp_path / "ttyRTU"), baud=115200)
    try:
        assert isinstance(rtu, ModbusProtocol)
        assert rtu.config.serial_device == str(tmp_path / "ttyRTU") and rtu.config.baud == 115200
    finally:
        rtu.close()
    with pytest.raises(ProtocolValidationError, match="needs a device"):
        manager.create("modbus-rtu", baud=9600)


def test_an_unknown_name_has_its_status():
    with pytest.raises(ProtocolValidationError) as raised:
        ProtocolManager().create("carrier-pigeon")
    assert raised.value.status == Status.UNKNOWN_PROTOCOL
    assert "no protocol named 'carrier-pigeon'" in str(raised.value)
    assert "mqtt" in str(raised.value)  # the detail lists what is available


def test_register_factory_adds_a_kind_and_refuses_a_taken_name():
    manager = ProtocolManager()
    manager.register_factory("loopback", Loopback)
    assert "loopback" in manager.available()
    plain = manager.create("loopback")
    prefixed = manager.create("loopback", {"prefix": b">"})
    with plain, prefixed:
        plain.send(b"ping")
        prefixed.send(b"ping")
        assert plain.receive() == b"ping" and prefixed.receive() == b">ping"

    for taken in ("loopback", "mqtt", "tcp"):
        with pytest.raises(ProtocolValidationError) as raised:
            manager.register_factory(taken, Loopback)
        assert raised.value.status == Status.PROTOCOL_EXISTS, taken
    manager.register_factory("loopback", lambda: Loopback(b"new:"), replace=True)
    replaced = manager.create("loopback")
    replaced.connect()
    replaced.send(b"x")
    assert replaced.receive() == b"new:x"
    # Another manager has only the built-ins and entry points.
    assert "loopback" not in ProtocolManager().available()


def test_a_factory_that_does_not_make_a_protocol_is_refused():
    manager = ProtocolManager()
    manager.register_factory("not-a-protocol", lambda: object())  # type: ignore[arg-type, return-value]
    with pytest.raises(ProtocolValidationError) as raised:
        manager.create("not-a-protocol")
    assert raised.value.status == Status.PLUGIN_SYMBOL
    with pytest.raises(ProtocolValidationError):
        manager.register_factory("x", "communicator:nothing")  # type: ignore[arg-type]
    with pytest.raises(ProtocolValidationError):
        manager.register_factory("", Loopback)


# ---------------------------------------------------------------- entry points, in a venv

PLUGIN_ENTRY_POINTS = """\
[communicator.protocols]
test-echo = eq1_test_echo:EchoProtocol
test-broken = eq1_test_echo_missing_module:Nothing
mqtt = eq1_test_echo:EchoProtocol
"""

PLUGIN_MODULE = """\
from communicator.interfaces.protocol import ReqResProtocol


class EchoProtocol(ReqResProtocol):
    \"\"\"What is sent comes back, with the configured greeting first.\"\"\"

    def __init__(self, greeting: str = "") -> None:
        self.greeting = greeting.encode()
        self.pending = b""

    def connect(self) -> bool:
        return True

    def disconnect(self) -> None:
        pass

    def send(self, data: bytes) -> bool:
        self.pending += self.greeting + data
        return True

    def receive(self, buffer_size: int = 1024) -> bytes:
        out, self.pending = self.pending[:buffer_size], self.pending[buffer_size:]
        return out
"""


def write_plugin_wheel(directory: Path) -> Path:
    """The third-party package as a wheel, written directly (a wheel is a zip with its
    dist-info): pip installs it like any other, offline, without a build backend."""
    name, version = "eq1_test_echo_protocol", "1.0"
    info = f"{name}-{version}.dist-info"
    files = {
        "eq1_test_echo.py": PLUGIN_MODULE,
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: eq1-test-echo-protocol\n"
                            f"Version: {version}\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: eq1-tests\nRoot-Is-Purelib: true\n"
                         "Tag: py3-none-any\n",
        f"{info}/entry_points.txt": PLUGIN_ENTRY_POINTS,
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest())
        record.append(f"{path},sha256={digest.rstrip(b'=').decode()},{len(text.encode())}")
    record.append(f"{info}/RECORD,,")
    wheel = directory / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        for path, text in files.items():
            z.writestr(path, text)
        z.writestr(f"{info}/RECORD", "\n".join(record) + "\n")
    return wheel


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_a_protocol_declared_by_an_entry_point_of_an_installed_package(tmp_path,
                                                                       communicator_wheel):
    plugin = write_plugin_wheel(tmp_path)
    subprocess.run([sys.executable, "-m", "venv", str(tmp_path / "venv")], check=True,
                   timeout=300)
    python = str(tmp_path / "venv" / "bin" / "python")
    env = {k: v for k, v in os.environ.items()
           if k not in ("EQ1_LIBRARY", "LD_LIBRARY_PATH", "PYTHONPATH")}
    r = subprocess.run([python, "-m", "pip", "install", "--quiet", "--no-index",
                        "--disable-pip-version-check", str(communicator_wheel), str(plugin)],
                       capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run([python, "-c", textwrap.dedent("""
        import communicator
        from communicator import ProtocolManager, ProtocolValidationError, Status
        from communicator.protocols.mqtt import MQTTProtocol
        manager = ProtocolManager()
        names = manager.available()
        print("available", names)
        echo = manager.create("test-echo", {"greeting": "hi "})
        print("class", type(echo).__module__, type(echo).__name__)
        echo.connect()
        echo.send(b"there")
        print("receive", echo.receive())
        try:
            manager.create("test-broken")
        except ProtocolValidationError as e:
            print("broken", Status(e.status).name, "eq1_test_echo_missing_module" in str(e))
        # An entry point cannot take a built-in's name.
        print("mqtt", type(manager.create("mqtt")).__name__)
        print("library", communicator.library_path().startswith(__import__("sys").prefix))
        """)], capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    available = eval(lines[0].removeprefix("available "))  # a printed list of str
    assert sorted(BUILTINS + ["test-broken", "test-echo"]) == available
    assert lines[1:] == ["class eq1_test_echo EchoProtocol", "receive b'hi there'",
                         "broken PLUGIN_LOAD True", "mqtt MQTTProtocol", "library True"]

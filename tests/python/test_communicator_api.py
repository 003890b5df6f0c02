"""The communicator package without a broker: exceptions and their status table, MQTTConfig
validation, the interfaces, ProtocolManager bookkeeping and the ctypes declarations."""

from __future__ import annotations

import inspect
import logging
import pickle
import re

import pytest

from communicator_testutil import REPO

import communicator
from communicator import _native
from communicator.common import exceptions as exc
from communicator.common.exceptions import (
    LibraryNotFoundError,
    ProtocolAuthenticationError,
    ProtocolConnectionError,
    ProtocolDecodeError,
    ProtocolError,
    ProtocolValidationError,
    Status,
)
from communicator.common.logging import TRACE, get_logger, native_max_level_for, python_level_for
from communicator.interfaces.protocol import BaseProtocol, PubSubProtocol, ReqResProtocol
from communicator.manager import ProtocolManager
from communicator.protocols.mqtt.mqtt_protocol import MQTTConfig, MQTTProtocol

HEADER = (REPO / "include" / "eq1.h").read_text()


# ---------------------------------------------------------------- exceptions

def test_exception_hierarchy_is_the_designs():
    for cls in (ProtocolConnectionError, ProtocolAuthenticationError, ProtocolValidationError,
                ProtocolDecodeError):
        assert issubclass(cls, ProtocolError)
    assert issubclass(ProtocolError, Exception)
    assert issubclass(LibraryNotFoundError, ProtocolError)
    assert issubclass(LibraryNotFoundError, OSError)


def test_status_enum_matches_the_header():
    in_header = {m.group(1): int(m.group(2))
                 for m in re.finditer(r"EQ1_STATUS_(?!FAMILY_)(\w+) = (\d+)", HEADER)}
    ours = {s.name: s.value for s in Status if s.value >= 0}
    assert ours == in_header


@pytest.mark.parametrize("status", [s for s in Status if s != Status.OK])
def test_every_status_maps_to_one_exception_class(status):
    assert status in exc.EXCEPTION_BY_STATUS
    error = exc.error_from_status(status, "detail text")
    assert isinstance(error, ProtocolError)
    assert error.status == status and error.status_name == status.name
    assert error.detail == "detail text"
    assert "detail text" in str(error) and status.name in str(error)


@pytest.mark.parametrize("status,cls", [
    (Status.TIMEOUT, ProtocolConnectionError),
    (Status.CONNECTION_REFUSED, ProtocolConnectionError),
    (Status.DNS_FAILED, ProtocolConnectionError),
    (Status.NETWORK_ERROR, ProtocolConnectionError),
    (Status.CONNECTION_LOST, ProtocolConnectionError),
    (Status.TLS_ERROR, ProtocolConnectionError),
    (Status.TLS_UNKNOWN_ISSUER, ProtocolConnectionError),
    (Status.TLS_HOSTNAME_MISMATCH, ProtocolConnectionError),
    (Status.TLS_CERT_EXPIRED, ProtocolConnectionError),
    (Status.BROKER_REFUSED, ProtocolConnectionError),
    (Status.NOT_CONNECTED, ProtocolConnectionError),
    (Status.DISCONNECTED, ProtocolConnectionError),
    (Status.DROPPED, ProtocolConnectionError),
    (Status.BAD_CREDENTIALS, ProtocolAuthenticationError),
    (Status.NOT_AUTHORIZED, ProtocolAuthenticationError),
    (Status.TLS_CLIENT_CERT_REJECTED, ProtocolAuthenticationError),
    (Status.INVALID_TOPIC, ProtocolValidationError),
    (Status.INVALID_FILTER, ProtocolValidationError),
    (Status.INVALID_QOS, ProtocolValidationError),
    (Status.INVALID_ARGUMENT, ProtocolValidationError),
    (Status.NULL_ARGUMENT, ProtocolValidationError),
    (Status.PAYLOAD_TOO_LARGE, ProtocolValidationError),
    (Status.SUBSCRIBE_REFUSED, ProtocolValidationError),
    (Status.PUBLISH_REFUSED, ProtocolValidationError),
    (Status.QUEUE_FULL, ProtocolValidationError),
    (Status.TLS_CONFIG, ProtocolValidationError),
    (Status.PROTOCOL_ERROR, ProtocolDecodeError),
    (Status.INTERNAL, ProtocolError),
    (Status.CALLED_FROM_CALLBACK, ProtocolError),
])
def test_status_to_exception_mapping(status, cls):
    assert type(exc.error_from_status(status, "x")) is cls


def test_unknown_status_is_a_plain_protocol_error():
    error = exc.error_from_status(1234, "odd")
    assert type(error) is ProtocolError
    assert error.status == 1234 and error.status_name == "UNKNOWN_STATUS_1234"


def test_exceptions_made_by_users_get_a_default_status_and_pickle():
    e = ProtocolConnectionError("socket closed")
    assert e.status == Status.NETWORK_ERROR and e.detail == "socket closed"
    again = pickle.loads(pickle.dumps(ProtocolAuthenticationError("no", Status.BAD_CREDENTIALS)))
    assert type(again) is ProtocolAuthenticationError
    assert again.status == Status.BAD_CREDENTIALS and again.detail == "no"


# ---------------------------------------------------------------- logging

def test_log_levels_map_both_ways():
    assert python_level_for(1) == logging.ERROR
    assert python_level_for(2) == logging.WARNING
    assert python_level_for(3) == logging.INFO
    assert python_level_for(4) == logging.DEBUG
    assert python_level_for(5) == TRACE
    assert native_max_level_for(logging.WARNING) == 2
    assert native_max_level_for(logging.DEBUG) == 4
    assert native_max_level_for(TRACE) == 5
    assert native_max_level_for(logging.CRITICAL) == 1
    assert get_logger().name == "communicator"
    assert get_logger("x").name == "communicator.x"


# ---------------------------------------------------------------- MQTTConfig

def test_config_defaults_are_the_designs():
    c = MQTTConfig()
    assert (c.broker_address, c.port, c.timeout) == ("localhost", 1883, 60)
    assert c.username is None and c.password is None and c.ca_certs is None
    assert c.default_qos == 1
    assert c.tls is False
    assert c.protocol_version == 4 and c.keepalive == 60 and c.clean_session is True
    assert c.reconnect is True and c.queue_policy == "reject_new"


def test_config_turns_tls_on_when_a_ca_is_given(pki):
    assert MQTTConfig(ca_certs=pki.ca_crt).tls is True
    assert MQTTConfig(ca_certs=pki.ca_crt, tls=True).tls is True
    assert MQTTConfig(tls=True).tls is True  # system trust store


@pytest.mark.parametrize("fields,needle", [
    (dict(broker_address=""), "broker_address"),
    (dict(broker_address=None), "broker_address"),
    (dict(port=0), "port"),
    (dict(port=65536), "port"),
    (dict(port="1883"), "port"),
    (dict(timeout=0), "timeout"),
    (dict(timeout=-1), "timeout"),
    (dict(password="p"), "username"),
    (dict(username="a\0b"), "NUL"),
    (dict(keepalive=70000), "keepalive"),
    (dict(protocol_version=6), "protocol_version"),
    (dict(reconnect_min_delay=0), "reconnect_min_delay"),
    (dict(reconnect_min_delay=5, reconnect_max_delay=1), "reconnect_max_delay"),
    (dict(max_queued_messages=0), "max_queued_messages"),
    (dict(max_queued_bytes=0), "max_queued_bytes"),
    (dict(queue_policy="drop_newest"), "queue_policy"),
    (dict(inflight_window=0), "inflight_window"),
    (dict(max_packet_size=8), "max_packet_size"),
    (dict(default_qos=3), "default_qos"),
    (dict(brokers=[("h",)]), "brokers[0]"),
    (dict(brokers=[("h", 0)]), "brokers[0] port"),
    (dict(brokers=[("h", 1, True)]), "needs tls=True"),
    (dict(ca_certs="/nonexistent/ca.crt"), "ca_certs"),
    (dict(tls=False, ca_certs="/nonexistent/ca.crt"), "tls is False"),
    (dict(tls_insecure=True), "tls is False"),
    (dict(client_id="x" * 70000), "client_id"),
    (dict(operation_timeout=0), "operation_timeout"),
])
def test_config_validation_names_the_bad_field(fields, needle):
    with pytest.raises(ProtocolValidationError) as info:
        MQTTConfig(**fields)
    assert needle in str(info.value)


def test_config_repr_hides_passwords(pki):
    c = MQTTConfig(username="u", password="hunter2", ca_certs=pki.ca_crt, certfile=pki.client_crt,
                   keyfile=pki.client_key, keyfile_password="keysecret")
    text = repr(c)
    assert "hunter2" not in text and "keysecret" not in text
    assert "password='***'" in text and "keyfile_password='***'" in text
    assert "username='u'" in text
    assert "password=None" in repr(MQTTConfig())


@pytest.mark.parametrize("name", ["tls_insecure", "tls_verify_hostname", "clean_session",
                                  "reconnect", "queue_before_connect",
                                  "allow_plaintext_fallback"])
@pytest.mark.parametrize("value", ["false", "True", 0, 1, None])
def test_config_bool_fields_accept_only_bools(pki, name, value):
    with pytest.raises(ProtocolValidationError) as info:
        MQTTConfig(ca_certs=pki.ca_crt, **{name: value})
    assert name in str(info.value)
    assert info.value.status == Status.INVALID_ARGUMENT


def test_config_tls_files_are_checked(pki, tmp_path):
    with pytest.raises(ProtocolValidationError) as info:
        MQTTConfig(ca_certs=pki.ca_crt, certfile=pki.client_crt)
    assert info.value.status == Status.TLS_CONFIG
    with pytest.raises(ProtocolValidationError):
        MQTTConfig(ca_certs=pki.ca_crt, keyfile_password="x")
    ok = MQTTConfig(ca_certs=pki.ca_crt, certfile=pki.client_crt, keyfile=pki.client_key)
    assert ok.tls is True


def test_config_failover_brokers_are_normalized(pki):
    c = MQTTConfig(brokers=[("a", 1), ("b", 2, False)])
    assert c.failover_brokers() == [("a", 1, False), ("b", 2, False)]
    c = MQTTConfig(ca_certs=pki.ca_crt, brokers=[("a", 1), ("b", 2, False)])
    assert c.failover_brokers() == [("a", 1, True), ("b", 2, False)]


def test_config_refuses_credentials_with_a_plaintext_failover_to_tls(pki):
    mixed = dict(username="u", password="secret", ca_certs=pki.ca_crt,
                 brokers=[("backup", 1883, False)])
    with pytest.raises(ProtocolValidationError) as info:
        MQTTConfig(**mixed)
    assert info.value.status == Status.TLS_CONFIG
    assert "backup:1883" in str(info.value) and "allow_plaintext_fallback" in str(info.value)
    with pytest.raises(ProtocolValidationError):  # a username alone may be the secret (a token)
        MQTTConfig(username="token", tls=True, brokers=[("backup", 1883, False)])
    assert MQTTConfig(**mixed, allow_plaintext_fallback=True).allow_plaintext_fallback
    MQTTConfig(ca_certs=pki.ca_crt, brokers=[("backup", 1883, False)])  # no credentials
    MQTTConfig(username="u", password="p", ca_certs=pki.ca_crt, brokers=[("b", 8883)])  # all TLS
    MQTTConfig(username="u", password="p", brokers=[("b", 1883)])  # all plaintext


def test_protocol_passes_allow_plaintext_fallback_to_the_library(pki):
    config = MQTTConfig(username="u", password="secret", ca_certs=pki.ca_crt,
                        brokers=[("backup", 1883, False)], allow_plaintext_fallback=True)
    MQTTProtocol(config).close()  # the library accepts it only with the option passed on


def test_config_revalidated_by_the_protocol():
    config = MQTTConfig()
    config.port = -5
    with pytest.raises(ProtocolValidationError):
        MQTTProtocol(config)


# ---------------------------------------------------------------- interfaces

def test_interfaces_are_abstract_with_the_designs_methods():
    assert inspect.isabstract(BaseProtocol)
    assert BaseProtocol.__abstractmethods__ == {"connect", "disconnect"}
    assert ReqResProtocol.__abstractmethods__ == {"connect", "disconnect", "send", "receive"}
    assert PubSubProtocol.__abstractmethods__ == {"connect", "disconnect", "publish",
                                                   "subscribe"}
    params = inspect.signature(PubSubProtocol.publish).parameters
    assert list(params) == ["self", "topic", "message", "qos", "retain"]
    assert params["qos"].default == 0 and params["retain"].default is False
    assert list(inspect.signature(PubSubProtocol.subscribe).parameters) == [
        "self", "topic", "callback", "qos"]
    assert issubclass(MQTTProtocol, PubSubProtocol)
    assert not inspect.isabstract(MQTTProtocol)


class _Loopback(ReqResProtocol):
    """A tiny request/response protocol, as a plugin would add one."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.connected = False
        self.buffer = b""

    def connect(self) -> bool:
        if self.fail:
            raise ProtocolConnectionError("loopback refused", Status.CONNECTION_REFUSED)
        self.connected = True
        return True

    def disconnect(self) -> None:
        self.connected = False

    def send(self, data: bytes) -> bool:
        self.buffer += data
        return True

    def receive(self, buffer_size: int = 1024) -> bytes:
        out, self.buffer = self.buffer[:buffer_size], self.buffer[buffer_size:]
        return out


def test_base_protocol_context_manager_connects_and_disconnects():
    with _Loopback() as p:
        assert p.connected
        p.send(b"ping")
        assert p.receive(2) == b"pi" and p.receive() == b"ng"
    assert not p.connected


# ---------------------------------------------------------------- ProtocolManager

def test_manager_register_get_unregister():
    m = ProtocolManager()
    a, b = _Loopback(), _Loopback()
    assert m.register("a", a) is a
    m.register("b", b)
    assert m.get("a") is a and "b" in m and len(m) == 2 and list(m) == ["a", "b"]
    with pytest.raises(ProtocolValidationError):
        m.register("a", _Loopback())
    with pytest.raises(ProtocolValidationError):
        m.register("c", object())  # type: ignore[arg-type]
    with pytest.raises(ProtocolValidationError):
        m.register("", _Loopback())
    assert m.unregister("a") is a
    with pytest.raises(KeyError):
        m.get("a")
    with pytest.raises(KeyError):
        m.unregister("a")
    assert m.names() == ["b"]


def test_manager_connect_all_tries_everyone_and_raises_the_first_failure(caplog):
    m = ProtocolManager()
    good, bad, other = _Loopback(), _Loopback(fail=True), _Loopback()
    m.register("good", good)
    m.register("bad", bad)
    m.register("other", other)
    with pytest.raises(ProtocolConnectionError):
        m.connect_all()
    assert good.connected and other.connected
    assert "protocol 'bad' failed to connect" in caplog.text
    assert m.connect_all(raise_on_error=False) == {"good": True, "bad": False, "other": True}
    m.disconnect_all()
    assert not good.connected and not other.connected


def test_manager_context_manager_disconnects_on_a_failed_enter():
    m = ProtocolManager()
    good = m.register("good", _Loopback())
    m.register("bad", _Loopback(fail=True))
    with pytest.raises(ProtocolConnectionError):
        with m:
            pass
    assert not good.connected  # type: ignore[attr-defined]


# ---------------------------------------------------------------- ctypes declarations

def _header_functions() -> dict[str, int]:
    """name -> number of parameters, for every function declared in eq1.h."""
    functions = {}
    for m in re.finditer(r"^[a-z][\w ]*?\*?\s*\b(eq1_\w+)\(([^;]*?)\);", HEADER, re.M | re.S):
        params = m.group(2).strip()
        functions[m.group(1)] = 0 if params in ("", "void") else params.count(",") + 1
    return functions


def test_every_c_function_is_declared_with_its_arity():
    functions = _header_functions()
    assert len(functions) >= 35, functions
    assert set(_native.PROTOTYPES) == set(functions)
    for name, (restype, argtypes) in _native.PROTOTYPES.items():
        assert len(argtypes) == functions[name], name
    lib = _native.load()
    for name in functions:
        fn = getattr(lib, name)
        assert fn.argtypes is not None, name


def test_library_version_and_path(eq1_library):
    assert communicator.library_version() == "0.1.0"
    assert communicator.library_path() == str(eq1_library)
    assert _native.status_text(Status.TIMEOUT).startswith("EQ1_STATUS_TIMEOUT")

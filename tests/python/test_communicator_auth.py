"""The Python binding's MQTT 5.0 enhanced authentication (MQTTConfig.auth_method /
auth_callback, MQTTProtocol.on_auth and reauthenticate) through a SCRIPTED broker
(`harness.authbroker`): mosquitto 2.0.11 here has no enhanced-authentication plugin, so the
broker's side of the AUTH exchange is scripted (its docstring describes the toy method)."""

from __future__ import annotations

import pytest

from harness.authbroker import METHOD, ScriptedAuthBroker


@pytest.fixture
def auth_broker():
    broker = ScriptedAuthBroker()
    yield broker
    broker.close()
    assert not broker.errors, broker.errors


# ---------------------------------------------------------------- from Python

def _config(broker: ScriptedAuthBroker, client_id: str, callback, **extra):
    from communicator import MQTTConfig

    return MQTTConfig(broker_address=broker.host, port=broker.port, protocol_version=5,
                      client_id=client_id, reconnect=False, timeout=10,
                      auth_method=METHOD.decode(), auth_data=b"py-hello",
                      auth_callback=callback, **extra)


def _toy_answer(seen):
    def answer(challenge):
        seen.append((challenge.reason_code, challenge.data, challenge.reauthenticating))
        assert challenge.method == METHOD.decode()
        if challenge.reason_code == 0x18:
            return b"answer-" + challenge.data.split(b"-", 1)[1]
        return challenge.data == b"server-ok"
    return answer


def test_python_auth_callback_answers_the_challenge_and_reauthenticates(auth_broker):
    from communicator import MQTTProtocol

    seen: list = []
    with MQTTProtocol(_config(auth_broker, "py-client", _toy_answer(seen))) as client:
        assert seen == [(0x18, b"challenge-1", False), (0x00, b"server-ok", False)]
        assert client.publish("auth/py", b"x", qos=1)
        client.reauthenticate(b"again", timeout=10)
        assert seen[2:] == [(0x18, b"challenge-2", True)]
        assert client.publish("auth/py", b"y", qos=1)
        assert client.is_connected
    assert "CONNECT py-client data=b'py-hello'" in auth_broker.log
    assert "REAUTHENTICATED" in auth_broker.log


def test_python_auth_callback_rejecting_the_server_fails_with_auth_failed(auth_broker):
    from communicator import MQTTProtocol, ProtocolAuthenticationError, Status

    seen: list = []
    client = MQTTProtocol(_config(auth_broker, "forged-py", _toy_answer(seen)))
    try:
        with pytest.raises(ProtocolAuthenticationError) as info:
            client.connect()
        assert info.value.status == Status.AUTH_FAILED, info.value
        assert seen[-1] == (0x00, b"server-forged", False)
        assert not client.is_connected
    finally:
        client.close()


def test_python_auth_callback_that_raises_or_gives_a_wrong_answer_fails(auth_broker):
    from communicator import MQTTProtocol, ProtocolAuthenticationError, Status

    def wrong(challenge):
        return b"not-the-answer"

    client = MQTTProtocol(_config(auth_broker, "wrong-py", wrong))
    try:
        with pytest.raises(ProtocolAuthenticationError) as info:
            client.connect()
        assert info.value.status == Status.AUTH_FAILED
        assert any(e.startswith("REFUSED wrong-py") for e in auth_broker.log), auth_broker.log

        def raising(challenge):
            raise RuntimeError("no key for this broker")

        client.on_auth = raising
        with pytest.raises(ProtocolAuthenticationError) as info:
            client.connect()
        assert "no key for this broker" in str(info.value)
    finally:
        client.close()


def test_python_auth_config_is_validated(eq1_library):
    from communicator import MQTTConfig, MQTTProtocol, ProtocolValidationError, Status

    with pytest.raises(ProtocolValidationError):
        MQTTConfig(auth_method="TOY", protocol_version=4)
    with pytest.raises(ProtocolValidationError):
        MQTTConfig(auth_method="", protocol_version=5)
    with pytest.raises(ProtocolValidationError):
        MQTTConfig(auth_data=b"x", protocol_version=5)
    client = MQTTProtocol(MQTTConfig(protocol_version=5, reconnect=False))
    try:
        with pytest.raises(ProtocolValidationError) as info:
            client.reauthenticate(b"x")
        assert info.value.status == Status.AUTH_NOT_CONFIGURED
    finally:
        client.close()

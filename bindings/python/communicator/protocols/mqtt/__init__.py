"""MQTT 3.1.1 / 5.0 over libeq1."""

from communicator.protocols.mqtt.mqtt_protocol import (
    AuthChallenge,
    ConnectionEvent,
    ConnectionState,
    MQTTConfig,
    MQTTProtocol,
)

__all__ = ["AuthChallenge", "ConnectionEvent", "ConnectionState", "MQTTConfig", "MQTTProtocol"]

"""MQTT 3.1.1 / 5.0 over libeq1."""

from communicator.protocols.mqtt.mqtt_protocol import (
    AuthChallenge,
    ConnectionEvent,
    ConnectionState,
    MQTTConfig,
    MQTTProtocol,
    RetainHandling,
    SubscribeAck,
    SubscribeOptions,
    SubscribeResult,
    UnsubscribeAck,
    UnsubscribeResult,
)

__all__ = ["AuthChallenge", "ConnectionEvent", "ConnectionState", "MQTTConfig", "MQTTProtocol",
           "RetainHandling", "SubscribeAck", "SubscribeOptions", "SubscribeResult",
           "UnsubscribeAck", "UnsubscribeResult"]

"""MQTT 3.1.1 / 5.0 over libeq1."""

from communicator.protocols.mqtt.mqtt_protocol import (
    ConnAckInfo,
    AuthChallenge,
    ConnectionEvent,
    DeliveryReport,
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

__all__ = ["AuthChallenge", "ConnAckInfo", "ConnectionEvent", "ConnectionState", "DeliveryReport",
           "MQTTConfig", "MQTTProtocol", "RetainHandling", "SubscribeAck", "SubscribeOptions",
           "SubscribeResult",
           "UnsubscribeAck", "UnsubscribeResult"]

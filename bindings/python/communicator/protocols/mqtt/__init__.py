"""MQTT 3.1.1 / 5.0 over libeq1."""

from communicator.protocols.mqtt.async_mqtt import AsyncMQTTProtocol, Message, MessageStream

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

__all__ = ["AsyncMQTTProtocol", "AuthChallenge", "ConnAckInfo", "ConnectionEvent",
           "ConnectionState", "DeliveryReport", "Message", "MessageStream", "MQTTConfig",
           "MQTTProtocol", "RetainHandling", "SubscribeAck", "SubscribeOptions",
           "SubscribeResult", "UnsubscribeAck", "UnsubscribeResult"]

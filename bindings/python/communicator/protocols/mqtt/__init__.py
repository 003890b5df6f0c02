"""MQTT 3.1.1 / 5.0 over libeq1."""

from communicator.protocols.mqtt.mqtt_protocol import (
    ConnAckInfo,
    ConnectionEvent,
    DeliveryReport,
    ConnectionState,
    MQTTConfig,
    MQTTProtocol,
)

__all__ = ["ConnAckInfo", "ConnectionEvent", "ConnectionState", "DeliveryReport", "MQTTConfig",
           "MQTTProtocol"]

"""EQ-1 Network: a plugin-style communication framework. MQTT 3.1.1/5.0 is implemented over
libeq1 (Rust, C ABI) through ctypes.

    from communicator.protocols.mqtt.mqtt_protocol import MQTTProtocol, MQTTConfig

The native library is loaded on first use: $EQ1_LIBRARY, a libeq1.so beside this package, or
the system loader (libeq1.so.0).
"""

from communicator.common.exceptions import (
    LibraryNotFoundError,
    ProtocolAuthenticationError,
    ProtocolConnectionError,
    ProtocolDecodeError,
    ProtocolError,
    ProtocolValidationError,
    Status,
)
from communicator.interfaces.protocol import BaseProtocol, PubSubProtocol, ReqResProtocol
from communicator.manager import ProtocolManager
from communicator.protocols.mqtt.mqtt_protocol import (
    AuthChallenge,
    ConnAckInfo,
    ConnectionEvent,
    DeliveryReport,
    ConnectionState,
    MessageProperties,
    MQTTConfig,
    MQTTProtocol,
    RetainHandling,
    SubscribeAck,
    SubscribeOptions,
    SubscribeResult,
    TlsSignatureScheme,
    UnsubscribeAck,
    UnsubscribeResult,
)

__version__ = "0.1.0"


def library_version() -> str:
    """The loaded libeq1's version ("MAJOR.MINOR.PATCH"); loads the library if needed."""
    from communicator import _native

    return _native.version()


def library_path() -> str:
    """Where libeq1 was loaded from; loads the library if needed."""
    from communicator import _native

    return _native.library_path()


__all__ = [
    "AuthChallenge",
    "BaseProtocol",
    "ConnAckInfo",
    "ConnectionEvent",
    "DeliveryReport",
    "ConnectionState",
    "LibraryNotFoundError",
    "MQTTConfig",
    "MQTTProtocol",
    "MessageProperties",
    "ProtocolAuthenticationError",
    "ProtocolConnectionError",
    "ProtocolDecodeError",
    "ProtocolError",
    "ProtocolManager",
    "ProtocolValidationError",
    "PubSubProtocol",
    "ReqResProtocol",
    "RetainHandling",
    "Status",
    "SubscribeAck",
    "SubscribeOptions",
    "SubscribeResult",
    "TlsSignatureScheme",
    "UnsubscribeAck",
    "UnsubscribeResult",
    "library_path",
    "library_version",
]

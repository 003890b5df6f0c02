"""Abstract interfaces every protocol implements (BaseProtocol, ReqResProtocol, PubSubProtocol)."""

from communicator.interfaces.protocol import (
    BaseProtocol,
    MessageCallback,
    PubSubProtocol,
    ReqResProtocol,
)

__all__ = ["BaseProtocol", "MessageCallback", "PubSubProtocol", "ReqResProtocol"]

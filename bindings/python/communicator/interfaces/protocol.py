"""The design's protocol interfaces: every communication protocol is a BaseProtocol, and either
request/response (ReqResProtocol) or publish/subscribe (PubSubProtocol). New protocols plug in
by implementing one of them; ProtocolManager handles any BaseProtocol."""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType
from typing import Callable, Union

#: A subscription callback: ``callback(topic, payload)``.
MessageCallback = Callable[[str, bytes], None]
#: What may be published: text (sent as UTF-8) or bytes.
Payload = Union[str, bytes, bytearray, memoryview]


class BaseProtocol(ABC):
    """Common behaviour of every communication protocol."""

    @abstractmethod
    def connect(self) -> bool:
        """Opens the connection; True when connected (failures raise ProtocolError)."""

    @abstractmethod
    def disconnect(self) -> None:
        """Closes the connection."""

    @property
    def is_connected(self) -> bool:
        """True while connected. Protocols that can tell override this."""
        return False

    def __enter__(self) -> "BaseProtocol":
        self.connect()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.disconnect()


class ReqResProtocol(BaseProtocol):
    """Request/response protocols (TCP, serial, Modbus...)."""

    @abstractmethod
    def send(self, data: bytes) -> bool:
        """Sends ``data``; True on success."""

    @abstractmethod
    def receive(self, buffer_size: int = 1024) -> bytes:
        """Receives up to ``buffer_size`` bytes."""


class PubSubProtocol(BaseProtocol):
    """Publish/subscribe protocols (MQTT...)."""

    @abstractmethod
    def publish(self, topic: str, message: Payload, qos: int = 0, retain: bool = False) -> bool:
        """Publishes ``message`` on ``topic``; ``retain`` asks the broker to keep it."""

    @abstractmethod
    def subscribe(self, topic: str, callback: MessageCallback, qos: int = 0) -> bool:
        """Calls ``callback(topic, payload)`` for every message matching ``topic``."""

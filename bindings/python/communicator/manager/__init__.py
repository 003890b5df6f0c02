"""ProtocolManager: keeps named protocol instances (any BaseProtocol) and connects or
disconnects them together. Thread-safe."""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Iterator

from communicator.common.exceptions import ProtocolError, ProtocolValidationError
from communicator.common.logging import logger
from communicator.interfaces.protocol import BaseProtocol

__all__ = ["ProtocolManager"]


class ProtocolManager:
    """Named protocols, connected and disconnected as a group.

    >>> manager = ProtocolManager()
    >>> manager.register("telemetry", MQTTProtocol(MQTTConfig(port=1883)))  # doctest: +SKIP
    >>> with manager:                                                          # doctest: +SKIP
    ...     manager.get("telemetry").publish("a/b", "hello")
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._protocols: dict[str, BaseProtocol] = {}

    def register(self, name: str, protocol: BaseProtocol) -> BaseProtocol:
        """Adds ``protocol`` under ``name`` (which must be new); returns the protocol."""
        if not isinstance(name, str) or not name:
            raise ProtocolValidationError("a protocol name must be a non-empty string")
        if not isinstance(protocol, BaseProtocol):
            raise ProtocolValidationError(
                f"{type(protocol).__name__} is not a BaseProtocol; cannot register it as "
                f"'{name}'")
        with self._lock:
            if name in self._protocols:
                raise ProtocolValidationError(f"a protocol named '{name}' is already registered")
            self._protocols[name] = protocol
        return protocol

    def get(self, name: str) -> BaseProtocol:
        """The protocol registered as ``name``; KeyError when there is none."""
        with self._lock:
            try:
                return self._protocols[name]
            except KeyError:
                raise KeyError(f"no protocol named '{name}' is registered") from None

    def unregister(self, name: str) -> BaseProtocol:
        """Removes and returns the protocol ``name`` (it is not disconnected); KeyError if none."""
        with self._lock:
            try:
                return self._protocols.pop(name)
            except KeyError:
                raise KeyError(f"no protocol named '{name}' is registered") from None

    def names(self) -> list[str]:
        """Registered names, in registration order."""
        with self._lock:
            return list(self._protocols)

    def connect_all(self, raise_on_error: bool = True) -> dict[str, bool]:
        """Connects every protocol, in registration order, and returns name -> connected.

        Every protocol is tried even when one fails; failures are logged. With
        ``raise_on_error`` (the default) the first failure is raised afterwards.
        """
        results: dict[str, bool] = {}
        first_error: ProtocolError | None = None
        for name, protocol in self._snapshot():
            try:
                results[name] = bool(protocol.connect())
            except ProtocolError as e:
                logger.error("protocol '%s' failed to connect: %s", name, e)
                results[name] = False
                first_error = first_error or e
        if first_error is not None and raise_on_error:
            raise first_error
        return results

    def disconnect_all(self) -> None:
        """Disconnects every protocol, in reverse registration order; never raises
        ProtocolError (failures are logged)."""
        for name, protocol in reversed(self._snapshot()):
            try:
                protocol.disconnect()
            except ProtocolError as e:
                logger.error("protocol '%s' failed to disconnect: %s", name, e)

    def _snapshot(self) -> list[tuple[str, BaseProtocol]]:
        with self._lock:
            return list(self._protocols.items())

    def __contains__(self, name: object) -> bool:
        with self._lock:
            return name in self._protocols

    def __len__(self) -> int:
        with self._lock:
            return len(self._protocols)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __enter__(self) -> "ProtocolManager":
        try:
            self.connect_all()
        except BaseException:
            self.disconnect_all()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.disconnect_all()

    def __repr__(self) -> str:
        return f"<ProtocolManager {self.names()!r}>"

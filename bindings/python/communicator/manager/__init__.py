"""ProtocolManager: creates protocols by name from a registry of factories (the built-ins,
third-party protocols declared in the ``communicator.protocols`` entry-point group, and
factories registered at run time), and keeps named protocol instances (any BaseProtocol) to
connect or disconnect them together. Thread-safe."""

from __future__ import annotations

import importlib
import threading
from collections.abc import Mapping
from importlib import metadata
from types import TracebackType
from typing import Any, Callable, Iterator, Optional, Union

from communicator.common.exceptions import ProtocolError, ProtocolValidationError, Status
from communicator.common.logging import logger
from communicator.interfaces.protocol import BaseProtocol
from communicator.manager.builtins import BUILTINS

__all__ = ["ENTRY_POINT_GROUP", "ProtocolFactory", "ProtocolManager"]

#: The entry-point group third-party packages declare their protocols in, e.g. in their
#: pyproject.toml: ``[project.entry-points."communicator.protocols"] redis = "pkg:RedisProtocol"``.
ENTRY_POINT_GROUP = "communicator.protocols"

#: What makes a protocol: a BaseProtocol subclass or any callable returning a BaseProtocol.
ProtocolFactory = Callable[..., BaseProtocol]

# A factory not imported yet: "module:attribute" (built-ins) or an entry point.
_Lazy = Union[str, metadata.EntryPoint]


def _load(source: _Lazy) -> ProtocolFactory:
    if isinstance(source, metadata.EntryPoint):
        loaded: Any = source.load()
    else:
        module, _, attribute = source.partition(":")
        loaded = getattr(importlib.import_module(module), attribute)
    if not callable(loaded):
        raise TypeError(f"{loaded!r} is not callable")
    return loaded  # type: ignore[no-any-return]


def _describe(source: _Lazy) -> str:
    if isinstance(source, metadata.EntryPoint):
        return f"entry point '{source.name} = {source.value}' of group {ENTRY_POINT_GROUP}"
    return source


class ProtocolManager:
    """Protocols created by name, and named protocols connected and disconnected as a group.

    >>> manager = ProtocolManager()
    >>> manager.available()                                         # doctest: +SKIP
    ['modbus-rtu', 'modbus-tcp', 'mqtt', 'serial', 'tcp', ...]
    >>> mqtt = manager.create("mqtt", MQTTConfig(port=1883))         # doctest: +SKIP
    >>> line = manager.create("serial", {"device": "/dev/ttyUSB0"})  # doctest: +SKIP
    >>> manager.register("telemetry", mqtt)                         # doctest: +SKIP
    >>> with manager:                                               # doctest: +SKIP
    ...     manager.get("telemetry").publish("a/b", "hello")
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._protocols: dict[str, BaseProtocol] = {}
        self._factories: dict[str, Union[ProtocolFactory, _Lazy]] = dict(BUILTINS)
        self._entry_points_read = False

    # ------------------------------------------------------------ the registry of kinds

    def register_factory(self, name: str, factory: ProtocolFactory,
                         replace: bool = False) -> None:
        """Makes ``create(name, ...)`` call ``factory`` (a BaseProtocol subclass or a callable
        returning one). A name known already (a built-in, an entry point, a factory) is
        refused with status ``PROTOCOL_EXISTS`` unless ``replace``."""
        if not isinstance(name, str) or not name:
            raise ProtocolValidationError("a protocol name must be a non-empty string")
        if not callable(factory):
            raise ProtocolValidationError(f"the factory for '{name}' is not callable")
        with self._lock:
            self._read_entry_points()
            if name in self._factories and not replace:
                raise ProtocolValidationError(
                    f"a protocol named '{name}' is registered already", Status.PROTOCOL_EXISTS)
            self._factories[name] = factory

    def available(self) -> list[str]:
        """Every name ``create`` knows, sorted: the built-ins ("modbus-rtu", "modbus-tcp",
        "mqtt", "serial", "tcp"), entry points of the ``communicator.protocols`` group and
        registered factories. Nothing is imported to list them."""
        with self._lock:
            self._read_entry_points()
            return sorted(self._factories)

    def create(self, name: str, config: Optional[Any] = None,
               register_as: Optional[str] = None, **options: Any) -> BaseProtocol:
        """A new, not yet connected protocol of the kind ``name``.

        ``config`` is the kind's config object (``MQTTConfig``, ``SerialConfig``...), or a
        mapping of its fields; fields may also come as keywords. The factory is called as
        ``factory(**config, **options)`` for a mapping, ``factory(config, **options)`` for an
        object and ``factory(**options)`` without. ``register_as`` also registers the instance
        under that name (see ``register``).

        Raises ``ProtocolValidationError``: status ``UNKNOWN_PROTOCOL`` for a name nobody
        registered, ``PLUGIN_LOAD`` when the factory cannot be imported, ``PLUGIN_SYMBOL`` when
        it returns something that is not a BaseProtocol; and whatever the factory raises.
        """
        with self._lock:
            self._read_entry_points()
            source = self._factories.get(name)
        if source is None:
            raise ProtocolValidationError(
                f"no protocol named '{name}' is registered (available: "
                f"{', '.join(self.available())})", Status.UNKNOWN_PROTOCOL)
        factory = self._resolve(name, source)
        if isinstance(config, Mapping):
            protocol = factory(**{**config, **options})
        elif config is not None:
            protocol = factory(config, **options)
        else:
            protocol = factory(**options)
        if not isinstance(protocol, BaseProtocol):
            raise ProtocolValidationError(
                f"the factory of '{name}' returned {type(protocol).__name__}, not a "
                "BaseProtocol", Status.PLUGIN_SYMBOL)
        if register_as is not None:
            self.register(register_as, protocol)
        return protocol

    def _resolve(self, name: str, source: Union[ProtocolFactory, _Lazy]) -> ProtocolFactory:
        if not isinstance(source, (str, metadata.EntryPoint)):
            return source
        try:
            factory = _load(source)
        except (ImportError, AttributeError, TypeError) as e:
            raise ProtocolValidationError(
                f"protocol '{name}': cannot load {_describe(source)}: {e}",
                Status.PLUGIN_LOAD) from e
        with self._lock:
            if self._factories.get(name) is source:
                self._factories[name] = factory
        return factory

    def _read_entry_points(self) -> None:
        """Adds the entry points of ENTRY_POINT_GROUP once (caller holds the lock). A name
        taken by a built-in stays the built-in's: a package cannot replace one by installing."""
        if self._entry_points_read:
            return
        self._entry_points_read = True
        for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
            if entry.name in self._factories:
                logger.warning("%s is ignored: a protocol named '%s' exists already",
                               _describe(entry), entry.name)
                continue
            self._factories[entry.name] = entry

    # ------------------------------------------------------------ named instances

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

"""Connection events of ``TCPProtocol``, ``SerialProtocol`` and ``ModbusProtocol``: one hook
(``on_connection_event``, or ``set_connection_callback``) over libeq1's
``eq1_*_client_set_connection_callback``. The callback receives a ``ProtocolEvent``
(``CONNECTED``, ``LOST`` with the status and detail of why, ``RECONNECTED`` after an automatic
reconnect, ``DISCONNECTED`` by ``disconnect()``) on the client's dispatcher thread: never the
thread whose call noticed the change, nor the library's I/O thread; one event at a time, in
order. A callback may call the client's methods, ``close()`` included (freeing then happens on
another thread). An exception in the callback is logged and the client continues."""

from __future__ import annotations

import enum
import logging
import threading
import weakref
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Optional

from communicator import _native
from communicator.common.exceptions import (ProtocolError, ProtocolValidationError, Status,
                                            error_from_status)

logger = logging.getLogger(__name__)


class ConnectionEventKind(enum.IntEnum):
    """``eq1_protocol_event_kind``"""

    CONNECTED = 1
    LOST = 2
    RECONNECTED = 3
    DISCONNECTED = 4


@dataclass(frozen=True)
class ProtocolEvent:
    """One connection event (``eq1_protocol_event``)."""

    kind: ConnectionEventKind
    #: Why the connection was lost (``Status.CONNECTION_LOST``, ``TIMEOUT``, ``SERIAL_ERROR``
    #: ...); ``Status.OK`` for the other kinds.
    status: int
    #: The detail of ``status``; "" when none.
    message: str

    @property
    def error(self) -> Optional[ProtocolError]:
        """The loss as the binding's exception (None unless ``kind`` is LOST)."""
        return None if self.status == Status.OK else error_from_status(self.status,
                                                                       self.message)


ConnectionEventCallback = Callable[[ProtocolEvent], None]

# user_data id -> the protocol object; weak, so that an unreferenced client is collected.
_owners: "dict[int, weakref.ref[ConnectionEventsMixin]]" = {}
_owners_lock = threading.Lock()
_next_id = iter(range(1, 2**62)).__next__


def _dispatch(user_data: Optional[int], event: Any) -> None:
    try:
        ref = _owners.get(user_data or 0)
        owner = ref() if ref is not None else None
        if owner is not None and event:
            owner._deliver_connection_event(event.contents)
    except BaseException:  # noqa: BLE001 - nothing may escape into the dispatcher thread
        logger.exception("internal error while dispatching a connection event")


# One trampoline for every client, alive for the whole process: the library never calls a
# freed ctypes thunk.
_trampoline = _native.PROTOCOL_EVENT_CB(_dispatch)


class ConnectionEventsMixin:
    """The connection-event hook of a native request/response client. The class names its
    setter and free functions; the instance has ``_lib`` and ``_client`` (the handle)."""

    _EVENT_SETTER: ClassVar[str]
    _FREE: ClassVar[str]
    _lib: Any
    _client: Optional[int]
    _events_id: int = 0
    _events_callback: Optional[ConnectionEventCallback] = None
    _dispatcher_ident: Optional[int] = None

    @property
    def on_connection_event(self) -> Optional[ConnectionEventCallback]:
        """Called with each ``ProtocolEvent`` on the dispatcher thread; None: no callback."""
        return self._events_callback

    @on_connection_event.setter
    def on_connection_event(self, callback: Optional[ConnectionEventCallback]) -> None:
        self.set_connection_callback(callback)

    def set_connection_callback(self, callback: Optional[ConnectionEventCallback]) -> None:
        """Sets (or with None removes) the connection-event callback."""
        if callback is not None and not callable(callback):
            raise ProtocolValidationError("the connection callback must be callable or None")
        if not self._client:
            raise ProtocolValidationError("the client is closed")
        if callback is not None and not self._events_id:
            with _owners_lock:
                ident = _next_id()
                _owners[ident] = weakref.ref(self)
            self._events_id = ident
            _native.check(getattr(self._lib, self._EVENT_SETTER)(self._client, _trampoline,
                                                                 ident), "connection callback")
        self._events_callback = callback

    def _deliver_connection_event(self, event: Any) -> None:
        self._dispatcher_ident = threading.get_ident()
        callback = self._events_callback
        if callback is None:
            return
        info = ProtocolEvent(kind=ConnectionEventKind(event.kind), status=int(event.status),
                             message=(event.message or b"").decode("utf-8", errors="replace"))
        try:
            callback(info)
        except BaseException:  # noqa: BLE001 - a user callback never stops the client
            logger.exception("the connection callback raised; the client continues")

    def _free_native(self, client: int) -> None:
        """Frees the native client; from inside its own callback (where the library refuses,
        since freeing joins the dispatcher) on another thread."""
        if self._dispatcher_ident == threading.get_ident():
            threading.Thread(target=self._free_native, args=(client,),
                             name="communicator-close", daemon=True).start()
            return
        status = getattr(self._lib, self._FREE)(client)
        if status == Status.CALLED_FROM_CALLBACK:
            threading.Thread(target=self._free_native, args=(client,),
                             name="communicator-close", daemon=True).start()
            return
        if self._events_id:
            with _owners_lock:
                _owners.pop(self._events_id, None)

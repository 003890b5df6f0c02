"""The exception hierarchy of the original design, chosen for a libeq1 status code from the
status's family (``eq1_status_family_of``): libeq1's status table is the only list.

    ProtocolError                      general protocol error (also: internal errors)
    ├── ProtocolConnectionError        connecting failed, timed out, the connection was lost
    ├── ProtocolAuthenticationError    the broker (or its TLS layer) rejected who we are
    ├── ProtocolValidationError        a publish/subscribe/argument/configuration was refused
    └── ProtocolDecodeError            data from the broker could not be decoded

Every exception carries ``.status`` (the libeq1 status number, an ``int``), ``.status_name``
(``"TIMEOUT"``, ``"BAD_CREDENTIALS"``...) and ``.detail`` (the library's detail message, which
names the cause, e.g. the host that refused the connection).
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from typing import Any


class Status(enum.IntEnum):
    """libeq1's ``eq1_status`` codes (stable numbers, see ``include/eq1.h``), for typing and
    comparisons; a test checks it against the table the library lists at run time."""

    OK = 0
    NULL_ARGUMENT = 1
    INVALID_UTF8 = 2
    INVALID_TOPIC = 3
    INVALID_FILTER = 4
    INVALID_QOS = 5
    PAYLOAD_TOO_LARGE = 6
    INVALID_ARGUMENT = 7
    INVALID_CLIENT_ID = 8
    INVALID_STATE = 9
    CALLED_FROM_CALLBACK = 10
    QUEUE_FULL = 11
    NOT_CONNECTED = 12
    QOS_NOT_SUPPORTED = 13
    FEATURE_NOT_SUPPORTED = 14
    TIMEOUT = 20
    CONNECTION_REFUSED = 21
    DNS_FAILED = 22
    NETWORK_ERROR = 23
    CONNECTION_LOST = 24
    TLS_ERROR = 30
    TLS_UNKNOWN_ISSUER = 31
    TLS_HOSTNAME_MISMATCH = 32
    TLS_CERT_EXPIRED = 33
    TLS_CLIENT_CERT_REJECTED = 34
    TLS_CONFIG = 35
    BAD_CREDENTIALS = 40
    NOT_AUTHORIZED = 41
    BROKER_REFUSED = 42
    SUBSCRIBE_REFUSED = 43
    PUBLISH_REFUSED = 44
    PROTOCOL_ERROR = 45
    DISCONNECTED = 46
    DROPPED = 47
    UNSUPPORTED_PROTOCOL_VERSION = 48
    EXPIRED = 49
    SERVER_MOVED = 50
    AUTH_FAILED = 53
    AUTH_NOT_CONFIGURED = 54
    UNSUBSCRIBE_REFUSED = 56
    MQTT5_REQUIRED = 57
    NO_RESPONSE_TOPIC = 59
    TOO_MANY_REQUESTS = 60
    STORE_LOCKED = 62
    STORE_FULL = 63
    STORE_IO = 64
    STORE_CORRUPT = 65
    STORE_CLIENT_MISMATCH = 66
    STORE_READ_ONLY = 67
    PROXY_FAILED = 70
    PROXY_AUTH_FAILED = 71
    WEBSOCKET_FAILED = 72
    BIND_FAILED = 73
    TLS_CERT_REVOKED = 76
    TLS_CLIENT_CERT_REVOKED = 77
    TLS_KEY_PASSWORD = 78
    TLS_SIGNER_FAILED = 79
    PROTOCOL_EXISTS = 80
    UNSUPPORTED_OPERATION = 82
    UNKNOWN_PROTOCOL = 83
    PLUGIN_LOAD = 84
    PLUGIN_SYMBOL = 85
    PLUGIN_VERSION = 86
    FRAME_TOO_LARGE = 87
    SERIAL_ERROR = 88
    PLUGIN_FAILED = 89
    MODBUS_ILLEGAL_FUNCTION = 90
    MODBUS_ILLEGAL_DATA_ADDRESS = 91
    MODBUS_ILLEGAL_DATA_VALUE = 92
    MODBUS_SERVER_DEVICE_FAILURE = 93
    MODBUS_ACKNOWLEDGE = 94
    MODBUS_SERVER_BUSY = 95
    MODBUS_GATEWAY_PATH_UNAVAILABLE = 96
    MODBUS_GATEWAY_TARGET_FAILED = 97
    MODBUS_BAD_FRAME = 98
    INTERNAL = 99
    # Not a libeq1 code: the binding could not load the library at all.
    LIBRARY_NOT_FOUND = -1


def status_name(status: int) -> str:
    """``"TIMEOUT"`` for 20; ``"UNKNOWN_STATUS_<n>"`` for a number libeq1 does not define."""
    try:
        return Status(status).name
    except ValueError:
        return f"UNKNOWN_STATUS_{status}"


class ProtocolError(Exception):
    """Base of every error of the framework: a general protocol error."""

    #: Status used when an instance is created without one (e.g. by a user's own protocol).
    default_status: int = Status.INTERNAL

    def __init__(self, detail: str = "", status: int | None = None) -> None:
        self.status: int = int(self.default_status if status is None else status)
        self.status_name: str = status_name(self.status)
        self.detail: str = detail or self.status_name
        super().__init__(f"{self.detail} [{self.status_name}]")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.detail, self.status))


class ProtocolConnectionError(ProtocolError):
    """Connecting failed (refused, DNS, TLS handshake, timeout) or the connection was lost."""

    default_status = Status.NETWORK_ERROR


class ProtocolAuthenticationError(ProtocolError):
    """The broker rejected our identity: user name/password, authorization, client certificate."""

    default_status = Status.NOT_AUTHORIZED


class ProtocolValidationError(ProtocolError):
    """A publish, subscribe, argument or configuration was invalid or refused."""

    default_status = Status.INVALID_ARGUMENT


class ProtocolDecodeError(ProtocolError):
    """Data from the broker could not be decoded (malformed packet, topic not UTF-8)."""

    default_status = Status.PROTOCOL_ERROR


class LibraryNotFoundError(ProtocolError, OSError):
    """libeq1 could not be loaded; the message lists every place that was tried."""

    default_status = Status.LIBRARY_NOT_FOUND


class StatusFamily(enum.IntEnum):
    """libeq1's ``eq1_status_family``: the kind of cause of a status (see ``include/eq1.h``)."""

    OK = 0
    VALIDATION = 1
    CONNECTION = 2
    AUTHENTICATION = 3
    DECODE = 4
    USAGE = 5
    INTERNAL = 6
    UNKNOWN = 7


# The exception class of each family. Which status is in which family is decided once, in
# libeq1's status table (src/core/status.rs, with the reasons), and asked at run time.
EXCEPTION_BY_FAMILY: dict[int, type[ProtocolError]] = {
    StatusFamily.VALIDATION: ProtocolValidationError,
    StatusFamily.CONNECTION: ProtocolConnectionError,
    StatusFamily.AUTHENTICATION: ProtocolAuthenticationError,
    StatusFamily.DECODE: ProtocolDecodeError,
}


def status_family(status: int) -> StatusFamily:
    """The family libeq1 gives ``status`` (UNKNOWN for a number it does not define)."""
    from communicator import _native  # here, not at the top: _native imports this module

    try:
        return StatusFamily(_native.status_family(status))
    except LibraryNotFoundError:  # without the library no number can be classified
        return StatusFamily.UNKNOWN
    except ValueError:  # a family newer than this binding
        return StatusFamily.UNKNOWN


def exception_class_for(status: int) -> type[ProtocolError]:
    """The exception class for a status: its family's (ProtocolError for the others)."""
    if status == Status.LIBRARY_NOT_FOUND:
        return LibraryNotFoundError
    return EXCEPTION_BY_FAMILY.get(status_family(status), ProtocolError)


class _ExceptionByStatus(Mapping[int, "type[ProtocolError]"]):
    """``EXCEPTION_BY_STATUS`` as a read-only view: every status libeq1 lists at run time
    (``eq1_status_count``/``eq1_status_at``), plus LIBRARY_NOT_FOUND, with its class."""

    def __getitem__(self, status: int) -> type[ProtocolError]:
        if status != Status.LIBRARY_NOT_FOUND and status not in self._listed():
            raise KeyError(status)
        return exception_class_for(status)

    def __iter__(self) -> Iterator[int]:
        return iter([*self._listed(), Status.LIBRARY_NOT_FOUND])

    def __len__(self) -> int:
        return len(self._listed()) + 1

    @staticmethod
    def _listed() -> dict[int, str]:
        from communicator import _native

        return _native.library_statuses()


EXCEPTION_BY_STATUS: Mapping[int, type[ProtocolError]] = _ExceptionByStatus()


def error_from_status(status: int, detail: str = "") -> ProtocolError:
    """Builds the exception for a failed libeq1 call (``detail``: its detail message)."""
    return exception_class_for(status)(detail, status)

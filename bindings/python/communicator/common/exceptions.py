"""The exception hierarchy of the original design and the one table that maps every libeq1
status code onto it.

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
from typing import Any


class Status(enum.IntEnum):
    """libeq1's ``eq1_status`` codes (stable numbers, see ``include/eq1.h``)."""

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


# The one table from status to exception class. Decisions worth knowing:
#  - TLS_CLIENT_CERT_REJECTED is authentication: the broker refused *who we are*, exactly like
#    a wrong password, and retrying will not help.
#  - TLS_CONFIG (a CA/certificate/key file that cannot be read or parsed, a wrong key password)
#    is validation: it is our own configuration, not the network or the broker.
#  - QUEUE_FULL is validation: the publish itself was refused (the design's "publish failed").
#  - INVALID_UTF8 from a call is validation (an argument); received data that is not UTF-8 is
#    raised by the binding as ProtocolDecodeError with that status.
#  - DISCONNECTED / DROPPED (a publish ended by a disconnect or dropped from the full offline
#    queue while offline) are connection errors: the connection, not the message, was the cause.
EXCEPTION_BY_STATUS: dict[int, type[ProtocolError]] = {
    Status.NULL_ARGUMENT: ProtocolValidationError,
    Status.INVALID_UTF8: ProtocolValidationError,
    Status.INVALID_TOPIC: ProtocolValidationError,
    Status.INVALID_FILTER: ProtocolValidationError,
    Status.INVALID_QOS: ProtocolValidationError,
    Status.PAYLOAD_TOO_LARGE: ProtocolValidationError,
    Status.INVALID_ARGUMENT: ProtocolValidationError,
    Status.INVALID_CLIENT_ID: ProtocolValidationError,
    Status.INVALID_STATE: ProtocolValidationError,
    Status.CALLED_FROM_CALLBACK: ProtocolError,
    Status.QUEUE_FULL: ProtocolValidationError,
    Status.NOT_CONNECTED: ProtocolConnectionError,
    Status.TIMEOUT: ProtocolConnectionError,
    Status.CONNECTION_REFUSED: ProtocolConnectionError,
    Status.DNS_FAILED: ProtocolConnectionError,
    Status.NETWORK_ERROR: ProtocolConnectionError,
    Status.CONNECTION_LOST: ProtocolConnectionError,
    Status.TLS_ERROR: ProtocolConnectionError,
    Status.TLS_UNKNOWN_ISSUER: ProtocolConnectionError,
    Status.TLS_HOSTNAME_MISMATCH: ProtocolConnectionError,
    Status.TLS_CERT_EXPIRED: ProtocolConnectionError,
    Status.TLS_CLIENT_CERT_REJECTED: ProtocolAuthenticationError,
    Status.TLS_CONFIG: ProtocolValidationError,
    Status.BAD_CREDENTIALS: ProtocolAuthenticationError,
    Status.NOT_AUTHORIZED: ProtocolAuthenticationError,
    Status.BROKER_REFUSED: ProtocolConnectionError,
    Status.SUBSCRIBE_REFUSED: ProtocolValidationError,
    Status.PUBLISH_REFUSED: ProtocolValidationError,
    Status.PROTOCOL_ERROR: ProtocolDecodeError,
    Status.DISCONNECTED: ProtocolConnectionError,
    Status.DROPPED: ProtocolConnectionError,
    Status.INTERNAL: ProtocolError,
    Status.LIBRARY_NOT_FOUND: LibraryNotFoundError,
}


def exception_class_for(status: int) -> type[ProtocolError]:
    """The exception class for a status (ProtocolError for anything not in the table)."""
    return EXCEPTION_BY_STATUS.get(status, ProtocolError)


def error_from_status(status: int, detail: str = "") -> ProtocolError:
    """Builds the exception for a failed libeq1 call (``detail``: its detail message)."""
    return exception_class_for(status)(detail, status)

"""Shared building blocks of every protocol: the exception hierarchy and logging."""

from communicator.common.exceptions import (
    LibraryNotFoundError,
    ProtocolAuthenticationError,
    ProtocolConnectionError,
    ProtocolDecodeError,
    ProtocolError,
    ProtocolValidationError,
    Status,
)

__all__ = [
    "LibraryNotFoundError",
    "ProtocolAuthenticationError",
    "ProtocolConnectionError",
    "ProtocolDecodeError",
    "ProtocolError",
    "ProtocolValidationError",
    "Status",
]

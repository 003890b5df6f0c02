"""Logging for the framework: the ``communicator`` logger, a TRACE level, and the bridge that
carries libeq1's own log records into Python's ``logging``.

The library logs through one process-wide callback. The bridge installs it with the most
verbose level the ``communicator`` logger would accept, so that records nobody wants never
cross into Python. Call :func:`sync_native_log_level` after changing the logger's level (every
``MQTTProtocol`` does it when created and when connecting).
"""

from __future__ import annotations

import logging

LOGGER_NAME = "communicator"

#: More verbose than DEBUG; libeq1's level 5.
TRACE = 5
logging.addLevelName(TRACE, "TRACE")

logger = logging.getLogger(LOGGER_NAME)
# A library must not print through logging's last-resort handler when the application has
# not configured logging; records still propagate to the application's handlers.
logger.addHandler(logging.NullHandler())

# libeq1 level (eq1_log_level) -> Python level.
NATIVE_TO_PYTHON_LEVEL: dict[int, int] = {
    1: logging.ERROR,
    2: logging.WARNING,
    3: logging.INFO,
    4: logging.DEBUG,
    5: TRACE,
}


def get_logger(name: str | None = None) -> logging.Logger:
    """The ``communicator`` logger, or its child ``communicator.<name>``."""
    return logger if not name else logger.getChild(name)


def python_level_for(native_level: int) -> int:
    """The Python level of a libeq1 log level (unknown levels log at DEBUG)."""
    return NATIVE_TO_PYTHON_LEVEL.get(native_level, logging.DEBUG)


def native_max_level_for(python_level: int) -> int:
    """The most verbose libeq1 level (1..5) whose records a logger at ``python_level`` keeps."""
    for native in (5, 4, 3, 2):
        if python_level <= NATIVE_TO_PYTHON_LEVEL[native]:
            return native
    return 1


def sync_native_log_level() -> None:
    """(Re)installs the library's log callback at the level the ``communicator`` logger wants.

    Cheap; does nothing when the library has not been loaded yet (loading installs it).
    """
    from communicator import _native

    _native.install_log_bridge(native_max_level_for(logger.getEffectiveLevel()), load_library=False)

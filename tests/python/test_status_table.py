"""The bindings' views of libeq1's status table: the Python Status/StatusFamily enums, the
Python exception class and the C++ (eq1.hpp) exception class of every status the library
lists at run time, all checked against the library itself."""

from __future__ import annotations

import re

import pytest

from communicator_testutil import REPO
from harness import cprog

from communicator import _native
from communicator.common import exceptions as exc
from communicator.common.exceptions import (
    ProtocolAuthenticationError,
    ProtocolConnectionError,
    ProtocolDecodeError,
    ProtocolError,
    ProtocolValidationError,
    Status,
    StatusFamily,
)

HEADER = (REPO / "include" / "eq1.h").read_text()

# Per family: the Python class and the C++ class. Which status is in which family is the
# library's decision, not this test's.
CLASSES_BY_FAMILY = {
    StatusFamily.VALIDATION: (ProtocolValidationError, "ValidationError"),
    StatusFamily.CONNECTION: (ProtocolConnectionError, "ConnectionError"),
    StatusFamily.AUTHENTICATION: (ProtocolAuthenticationError, "AuthenticationError"),
    StatusFamily.DECODE: (ProtocolDecodeError, "ProtocolError"),
    StatusFamily.USAGE: (ProtocolError, "Error"),
    StatusFamily.INTERNAL: (ProtocolError, "Error"),
}


@pytest.fixture(scope="module")
def listed() -> dict[int, str]:
    return _native.library_statuses()


def test_python_status_enum_is_the_librarys_table(listed):
    ours = {s.value: s.name for s in Status if s != Status.LIBRARY_NOT_FOUND}
    assert ours == listed


def test_python_family_enum_is_the_headers():
    in_header = {m.group(1): int(m.group(2))
                 for m in re.finditer(r"EQ1_STATUS_FAMILY_(\w+) = (\d+)", HEADER)}
    assert {f.name: f.value for f in StatusFamily} == in_header


def test_every_listed_status_has_a_known_family(listed):
    for number in listed:
        family = exc.status_family(number)
        assert family is not StatusFamily.UNKNOWN
        assert (family is StatusFamily.OK) == (number == Status.OK)
    assert exc.status_family(12345) is StatusFamily.UNKNOWN


def test_python_exception_class_follows_the_family(listed):
    for number in listed:
        if number == Status.OK:
            continue
        expected, _ = CLASSES_BY_FAMILY[exc.status_family(number)]
        assert type(exc.error_from_status(number)) is expected, listed[number]


def test_cpp_exception_class_follows_the_family(built_library, listed):
    exe = cprog.compile_cxx([REPO / "tests/cpp/status_classes.cpp"],
                            extra_flags=("-I", str(REPO / "bindings" / "cpp")))
    r = cprog.run(exe, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    printed = dict(line.split() for line in r.stdout.splitlines())
    assert set(map(int, printed)) == set(listed)
    for number, cpp_class in printed.items():
        family = exc.status_family(int(number))
        expected = "Error" if family is StatusFamily.OK else CLASSES_BY_FAMILY[family][1]
        assert cpp_class == expected, listed[int(number)]


def test_new_statuses_keep_their_families():
    assert exc.status_family(Status.QOS_NOT_SUPPORTED) is StatusFamily.VALIDATION
    assert exc.status_family(Status.FEATURE_NOT_SUPPORTED) is StatusFamily.VALIDATION
    assert exc.status_family(Status.UNSUPPORTED_PROTOCOL_VERSION) is StatusFamily.CONNECTION

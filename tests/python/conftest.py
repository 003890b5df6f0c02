"""Fixtures for the `communicator` Python package: imported from bindings/python, loading the
freshly built libeq1 through EQ1_LIBRARY. The brokers, PKI and proxies come from tests/conftest.py."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from communicator_testutil import BINDINGS, Inbox, copy_package_source, pip

if str(BINDINGS) not in sys.path:
    sys.path.insert(0, str(BINDINGS))


@pytest.fixture(scope="session", autouse=True)
def eq1_library(built_library) -> Path:
    """The built libeq1.so, exported as EQ1_LIBRARY before communicator loads it."""
    path = Path(built_library) / "libeq1.so"
    os.environ["EQ1_LIBRARY"] = str(path)
    return path


@pytest.fixture(scope="session")
def communicator_wheel(tmp_path_factory) -> Path:
    """The communicator wheel (libeq1 built by cargo and bundled), built once per session from
    a copy of the sources; the only file in its directory."""
    source = copy_package_source(tmp_path_factory.mktemp("wheel-source"))
    wheels = tmp_path_factory.mktemp("wheels")
    pip(sys.executable, "wheel", "--no-deps", "--quiet", "-w", str(wheels), str(source))
    built = sorted(wheels.glob("*.whl"))
    assert len(built) == 1, built
    return built[0]


@pytest.fixture
def inbox() -> Inbox:
    return Inbox()


@pytest.fixture
def make_client(eq1_library) -> Iterator[Callable[..., Any]]:
    """make_client(broker=None, **MQTTConfig fields) -> MQTTProtocol; closed at teardown.

    With a broker, broker_address/port default to it; timeouts are short for tests."""
    from communicator.protocols.mqtt.mqtt_protocol import MQTTConfig, MQTTProtocol

    made: list[MQTTProtocol] = []

    def make(broker=None, **fields: Any) -> MQTTProtocol:
        if broker is not None:
            fields.setdefault("broker_address", broker.host)
            fields.setdefault("port", broker.port)
        fields.setdefault("timeout", 10)
        client = MQTTProtocol(MQTTConfig(**fields))
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()

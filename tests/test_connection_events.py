"""The connection callback of the TCP, serial and Modbus clients
(eq1_*_client_set_connection_callback, issue 12: callbacks on a dispatcher thread) from C
(tests/c/eq1events.c) under valgrind, against real peers: the echo server resets the TCP
connection and automatic reconnect reopens it; pymodbus's server is killed and started again.
Each shows connected -> lost -> reconnected -> disconnected in order, every event on one
thread that is neither the caller's nor the library's I/O thread, and freeing the client
inside its own callback refused. The Python hooks' tests are in
tests/python/test_communicator_connection_events.py."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from harness import cprog

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO / "tests" / "c" / "eq1events.c"


@pytest.fixture(scope="module")
def program(built_library):
    return cprog.compile_c([SOURCE], extra_flags=("-pthread",))


def passed(r, valgrind=True):
    cprog.assert_all_passed(r)
    if valgrind:
        cprog.assert_valgrind_clean(r)
    return r


@pytest.mark.valgrind
@pytest.mark.timeout(600)
def test_tcp_events_arrive_in_order_on_the_dispatcher_thread(program, echo_server):
    r = passed(cprog.run(program, ["tcp", echo_server.host, echo_server.port], timeout=580,
                         valgrind=True))
    assert "tcp order: CONNECTED LOST RECONNECTED DISCONNECTED" in r.stdout
    assert echo_server.count("closed reset") == 1 and echo_server.count("accepted") == 2


def _wait_file(path: Path, deadline: float, gone: threading.Event) -> bool:
    while time.monotonic() < deadline and not gone.is_set():
        if path.exists():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.valgrind
@pytest.mark.timeout(600)
def test_modbus_server_killed_is_lost_and_back_is_reconnected(program, modbus_server,
                                                             tmp_path):
    done = threading.Event()
    problems: list[str] = []

    def kill_and_restart() -> None:
        # The program writes "connected" after its first read and "lost" when the callback
        # got the loss: the server goes down between the two and comes back after.
        try:
            deadline = time.monotonic() + 300
            if not _wait_file(tmp_path / "connected", deadline, done):
                problems.append("the program never connected")
                return
            modbus_server.stop()
            if not _wait_file(tmp_path / "lost", deadline, done):
                problems.append("no LOST event after the server was killed")
            modbus_server.start()
            # The server dies with the thread that started it (PR_SET_PDEATHSIG: die_with_parent
            # is per thread): this one stays until the program is done.
            done.wait(600)
        except Exception as e:  # noqa: BLE001 - reported by the test below
            problems.append(f"restarting the server failed: {e!r}")

    killer = threading.Thread(target=kill_and_restart)
    killer.start()
    try:
        r = cprog.run(program, ["modbus", modbus_server.host, modbus_server.port, tmp_path],
                      timeout=580, valgrind=True)
    finally:
        done.set()
        killer.join(60)
    assert not problems, f"{problems}\n{r.stdout[-4000:]}"
    passed(r)
    assert "modbus order: CONNECTED LOST RECONNECTED DISCONNECTED" in r.stdout


@pytest.mark.valgrind
def test_null_clients_have_their_status_and_free_joins_the_dispatcher(program):
    passed(cprog.run(program, ["bad"], timeout=240, valgrind=True))

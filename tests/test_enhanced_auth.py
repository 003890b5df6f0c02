"""MQTT 5.0 enhanced authentication from C, under valgrind, through a SCRIPTED broker
(`harness.authbroker`: mosquitto 2.0.11 here has no enhanced-authentication plugin, so the
broker's side of the AUTH exchange is scripted; its docstring describes the toy method).
The Python binding's authentication callback is tested in tests/python/test_communicator_auth.py.

The SCRAM-style two-step exchange with HMAC proofs, wrong passwords and re-authentication
during a QoS 1 stream are shown in Rust against the scripted socket of tests/scripted_auth.rs.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import cprog
from harness.authbroker import ScriptedAuthBroker

C_DIR = Path(__file__).resolve().parent / "c"


@pytest.fixture
def auth_broker():
    broker = ScriptedAuthBroker()
    yield broker
    broker.close()
    assert not broker.errors, broker.errors


# ---------------------------------------------------------------- from C

@pytest.mark.valgrind
def test_c_auth_callback_and_boundary_are_clean_under_valgrind(built_library, auth_broker):
    exe = cprog.compile_c([C_DIR / "test_auth.c"])
    r = cprog.run(exe, [auth_broker.host, auth_broker.port, "scripted"], timeout=300, valgrind=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUMMARY:" in r.stdout and " 0 failed" in r.stdout, r.stdout
    for check in ("set_auth_method(NULL method)", "set_auth_method(invalid UTF-8 method)",
                  "set_auth_callback(NULL client)", "reauthenticate without a method",
                  "connect through the challenge", "reauthenticate",
                  "connect(forged server-final)", "connect(no auth callback)",
                  "client_new(MQTT 3.1, 24-byte client id)"):
        assert f"ok   - {check}" in r.stdout, f"{check!r} not passed:\n{r.stdout}"
    cprog.assert_valgrind_clean(r)
    assert "REAUTHENTICATED" in auth_broker.log, auth_broker.log
    assert any(e == "CONNECT c-client data=b'client-hello'" for e in auth_broker.log), \
        auth_broker.log
    # Without a callback the client gives up on the challenge with DISCONNECT 0x80.
    assert "DISCONNECT 80 during CONNECT" in auth_broker.log, auth_broker.log

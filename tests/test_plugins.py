"""The plugin manager and the protocol registry from C: a tiny plugin (tests/c/plugin_echo.c,
an in-memory echo) built here as shared objects in its variants and loaded with
eq1_protocol_load_plugin, every refused load with its status (wrong abi_version, no entry
symbol, no open, a taken name, not a shared object, no such file), and every built-in opened
by name, with "mqtt" working through the generic handle against a real mosquitto. Both
programs also run under valgrind."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import cprog

REPO = cprog.repo_root()
C_DIR = REPO / "tests" / "c"


def build_plugin(out: Path, *defines: str) -> Path:
    return cprog.compile_plugin(C_DIR / "plugin_echo.c", out, defines)


@pytest.fixture(scope="module")
def plugins(built_library, tmp_path_factory) -> list[str]:
    d = tmp_path_factory.mktemp("plugins")
    good = build_plugin(d / "libecho.so")
    wrong_abi = build_plugin(d / "libecho_abi.so", "EQ1_TEST_ABI_VERSION=999",
                             'EQ1_TEST_PLUGIN_NAME="echo-abi"')
    no_entry = build_plugin(d / "libecho_noentry.so", "EQ1_TEST_NO_ENTRY")
    no_open = build_plugin(d / "libecho_noopen.so", "EQ1_TEST_NO_OPEN",
                           'EQ1_TEST_PLUGIN_NAME="echo-no-open"')
    named_tcp = build_plugin(d / "libecho_tcp.so", 'EQ1_TEST_PLUGIN_NAME="tcp"')
    not_an_object = d / "libtext.so"
    not_an_object.write_text("not an ELF file\n")
    missing = d / "libmissing.so"
    return [str(p) for p in (good, wrong_abi, no_entry, no_open, named_tcp, not_an_object,
                             missing)]



@pytest.mark.parametrize("valgrind", [False, pytest.param(True, marks=pytest.mark.valgrind)],
                         ids=["plain", "valgrind"])
@pytest.mark.timeout(300)
def test_plugin_loads_round_trips_and_every_bad_plugin_has_its_status(plugins, valgrind):
    program = cprog.compile_c([C_DIR / "eq1plugin.c"])
    r = cprog.run(program, plugins, timeout=280, valgrind=valgrind)
    cprog.assert_all_passed(r)
    for check in ("request returns its echo", "a wrong abi_version is refused",
                  "a shared object without eq1_plugin_entry", "a path that does not exist",
                  "the same plugin again: its name is taken",
                  "a plugin named like a built-in does not replace it"):
        assert f"ok   - {check}" in r.stdout, r.stdout
    if valgrind:
        cprog.assert_valgrind_clean(r)


@pytest.mark.parametrize("valgrind", [False, pytest.param(True, marks=pytest.mark.valgrind)],
                         ids=["plain", "valgrind"])
@pytest.mark.timeout(300)
def test_every_builtin_opens_by_name_and_mqtt_works_through_the_generic_handle(
        built_library, broker, valgrind):
    program = cprog.compile_c([C_DIR / "test_protocol_registry.c"])
    r = cprog.run(program, [broker.host, broker.port], timeout=280, valgrind=valgrind)
    cprog.assert_all_passed(r)
    for name in ("tcp", "serial", "modbus-tcp", "modbus-rtu", "mqtt"):
        assert f'ok   - "{name}" opens by name' in r.stdout, r.stdout
    assert "ok   - mqtt: received the QoS 1 payload" in r.stdout
    assert "ok   - an unknown name -> EQ1_STATUS_UNKNOWN_PROTOCOL" in r.stdout
    if valgrind:
        cprog.assert_valgrind_clean(r)

"""The C API from C: bad input, concurrency, and header hygiene.

Compiles tests/c/test_bad_input.c, test_concurrency.c and test_fork.c against the built libeq1 and
runs them against a private mosquitto (the `broker` fixture), once plainly and once under
valgrind; compiles a tiny program including eq1.h twice as C11 and as C++17.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest

from harness import cprog

C_DIR = Path(__file__).resolve().parent / "c"

# Messages per publisher thread (8 threads) in test_concurrency part (a).
CONCURRENCY_SCALE = 10_000
VALGRIND_CONCURRENCY_SCALE = 2_500

# Checks test_bad_input.c must report as passed: one per case of the specification.
BAD_INPUT_REQUIRED = [
    # NULL client handle to each client function
    "publish(NULL client)", "subscribe(NULL client)", "wait(NULL client)",
    "set_will(NULL client)", "connect(NULL client)", "disconnect(NULL client)",
    "unsubscribe(NULL client)", "get_stats(NULL client)",
    "unsubscribe_many(NULL filters) [connected]", "unsubscribe_many(NULL filter 1) [connected]",
    "unsubscribe_many(two filters) [connected]",
    # NULL options / out pointer
    "client_new(NULL options)", "client_new(NULL out)", "set_broker(NULL options)",
    "set_keep_alive(NULL options)", "set_offline_queue(NULL options)",
    # persistence
    "set_persistence(NULL options)", "set_persistence(NULL directory)",
    "set_persistence(invalid UTF-8 directory)", "set_persistence(durability 7)",
    "set_persistence_interval(0)", "set_persistence_limit(1000)",
    "client_new(persistence without a client id)", "restored_count(NULL out)",
    "restored_message(NULL buffer, length 16)", "restored_message(index 0 of 0)",
    # topics, payloads, UTF-8
    "publish(NULL topic) [connected]", "publish(NULL payload, len 5) [connected]",
    "publish(NULL payload, len 0) QoS 1", "wait on the empty-payload token",
    "publish(invalid UTF-8 topic) [connected]", "subscribe(invalid UTF-8 filter) [connected]",
    "set_client_id(invalid UTF-8)", "set_credentials(invalid UTF-8 username)",
    "publish(topic 'a/+') [connected]", "publish(topic 'a/#') [connected]",
    "publish(topic '') [connected]",
    "subscribe(filter 'a/#/b') [connected]", "subscribe(filter 'a+') [connected]",
    "subscribe(filter '#/a') [connected]",
    "publish(QoS 3) [connected]", "publish(QoS -1) [connected]",
    "subscribe(QoS 3) [connected]", "subscribe(QoS -1) [connected]",
    "publish(2000 bytes > max packet 1024) [connected]",
    "subscribe(NULL callback) [connected]",
    # option ranges
    "set_broker(port 0)", "set_broker(port 70000)", "set_keep_alive(-1)",
    "set_inflight_window(0)", "set_protocol_version(2)", "set_connect_timeout(-1)",
    # credentials with a TLS broker and a plaintext failover
    "client_new(TLS + plaintext failover + credentials)",
    "client_new(... + set_allow_plaintext_fallback(true))",
    "wait(timeout -1) [connected]", "connect(timeout -1) [connected]",
    # state
    "set_will while connected", "publish before connect",
    # library functions
    "eq1_mqtt_client_free(NULL) is a no-op returning OK", "eq1_mqtt_options_free(NULL) is a no-op",
    "eq1_status_str(12345) is a non-NULL, non-empty string",
    "eq1_last_error_message(NULL, 0) returns the message length",
    "eq1_last_error_message(buf, 4) writes 3 bytes + NUL",
    "eq1_version() equals EQ1_VERSION_STRING", "eq1_version_number() == EQ1_VERSION_NUMBER",
    "wait(token 0) [connected]", "wait(never-issued token) [connected]",
    # the round trip afterwards
    "connect again", "subscribe QoS 1", "received 'round trip'", "received the empty payload",
    "user_data_free ran exactly once",
]


# ---- fixtures --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def libdir(built_library) -> Path:
    """The built library, with the libeq1.so.0 SONAME link the programs need at run time."""
    lib = Path(built_library)
    so, so0 = lib / "libeq1.so", lib / "libeq1.so.0"
    if so.exists() and not so0.exists():
        # Fallback: harness.cprog.build_library does not create the SONAME link and cargo
        # never does; without it every program fails with "libeq1.so.0: cannot open".
        warnings.warn(f"{so0} missing after build_library(): creating the symlink here")
        try:
            so0.symlink_to("libeq1.so")
        except FileExistsError:
            pass
    return lib


@pytest.fixture(scope="module")
def bad_input_prog(libdir) -> Path:
    return cprog.compile_c([C_DIR / "test_bad_input.c"])


@pytest.fixture(scope="module")
def fork_prog(libdir) -> Path:
    return cprog.compile_c([C_DIR / "test_fork.c"])


@pytest.fixture(scope="module")
def concurrency_prog(libdir) -> Path:
    return cprog.compile_c([C_DIR / "test_concurrency.c"])


# ---- helpers ---------------------------------------------------------------------------------

def _run(prog, args, *, valgrind=False, timeout=120, env=None):
    r = cprog.run(prog, [str(a) for a in args], valgrind=valgrind, timeout=timeout, env=env)
    print(r.stdout[-6000:])
    return r


def _explain(r) -> str:
    fails = [line for line in r.stdout.splitlines() if line.startswith(("FAIL", "FATAL"))]
    return (f"exit {r.returncode}\nfailed checks:\n" + "\n".join(fails) +
            f"\n--- stdout (tail) ---\n{r.stdout[-6000:]}\n--- stderr (tail) ---\n"
            f"{r.stderr[-6000:]}")


def _summary(r) -> tuple[int, int]:
    m = re.search(r"^SUMMARY: (\d+) checks, (\d+) failed$", r.stdout, re.M)
    assert m, "no SUMMARY line\n" + _explain(r)
    return int(m.group(1)), int(m.group(2))


def _assert_all_passed(r, min_checks: int) -> None:
    assert r.returncode == 0, _explain(r)
    checks, failed = _summary(r)
    assert failed == 0, _explain(r)
    assert checks >= min_checks, f"only {checks} checks ran (expected >= {min_checks})\n" + \
        _explain(r)
    assert not re.search(r"^(FAIL|FATAL)", r.stdout, re.M), _explain(r)


def _result(r, part: str) -> dict[str, int]:
    m = re.search(rf"^RESULT {part}: (.*)$", r.stdout, re.M)
    assert m, f"no 'RESULT {part}:' line\n" + _explain(r)
    return {k: int(v) for k, v in re.findall(r"(\w+)=(-?\d+)", m.group(1))}


def _check_bad_input(r) -> None:
    _assert_all_passed(r, min_checks=190)
    passed = {line[len("ok   - "):] for line in r.stdout.splitlines() if line.startswith("ok   - ")}
    # EXPECT_ERR lines carry the status and message after " -> ".
    names = {p.split(" -> ")[0] for p in passed}
    missing = [n for n in BAD_INPUT_REQUIRED if n not in names]
    assert not missing, f"required checks not reported as passed: {missing}\n" + _explain(r)
    assert "ROUND TRIP OK" in r.stdout, _explain(r)


def _check_concurrency(r, per_thread: int) -> None:
    _assert_all_passed(r, min_checks=50)
    total = 8 * per_thread
    a = _result(r, "a")
    assert a["messages"] == total, a
    assert a["received_unique"] == total, a
    assert a["delivered_ok"] == total, a
    assert a["delivery_failures"] == 0, a
    assert "RESULT b: inner publish/wait/subscribe OK" in r.stdout, _explain(r)
    assert re.search(r"^RESULT c: freed with \d+ in flight, user_data_free calls=1$",
                     r.stdout, re.M), _explain(r)
    assert re.search(r"^RESULT c \(after acks\): freed with \d+ in flight, "
                     r"user_data_free calls=1$", r.stdout, re.M), _explain(r)
    assert "RESULT d: free refused inside callbacks, client usable, freed from main" \
        in r.stdout, _explain(r)


# ---- tests -----------------------------------------------------------------------------------

def test_soname_link_present(libdir):
    """Programs link against libeq1.so.0 (the SONAME): it must resolve in the library dir."""
    so0 = libdir / "libeq1.so.0"
    assert so0.exists(), f"{so0} missing"
    assert so0.resolve() == (libdir / "libeq1.so").resolve()


@pytest.mark.timeout(180)
def test_bad_input(bad_input_prog, broker):
    r = _run(bad_input_prog, [broker.host, broker.port], timeout=120)
    _check_bad_input(r)


@pytest.mark.valgrind
@pytest.mark.timeout(300)
def test_bad_input_valgrind(bad_input_prog, broker):
    r = _run(bad_input_prog, [broker.host, broker.port], valgrind=True, timeout=240)
    cprog.assert_valgrind_clean(r)
    _check_bad_input(r)


def _check_fork(r) -> None:
    _assert_all_passed(r, min_checks=20)  # the first SUMMARY line is the child's
    assert "ok   - child: nothing written to stderr" in r.stdout, _explain(r)
    assert "ok   - the child's checks passed" in r.stdout, _explain(r)


@pytest.mark.timeout(120)
def test_fork_child_refuses_the_parents_client_and_uses_its_own(fork_prog, broker):
    r = _run(fork_prog, [broker.host, broker.port], timeout=90)
    _check_fork(r)
    assert r.stderr == "", _explain(r)


@pytest.mark.valgrind
@pytest.mark.timeout(300)
def test_fork_valgrind(fork_prog, broker):
    # The child reports its own memory errors (see test_fork.c); valgrind checks the parent.
    r = _run(fork_prog, [broker.host, broker.port], valgrind=True, timeout=240,
             env={"VALGRIND_OPTS": "--child-silent-after-fork=yes"})
    cprog.assert_valgrind_clean(r)
    _check_fork(r)


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_concurrency(concurrency_prog, broker):
    r = _run(concurrency_prog, [broker.host, broker.port, CONCURRENCY_SCALE, 120], timeout=200)
    _check_concurrency(r, CONCURRENCY_SCALE)


@pytest.mark.slow
@pytest.mark.valgrind
@pytest.mark.timeout(400)
def test_concurrency_valgrind(concurrency_prog, broker):
    r = _run(concurrency_prog, [broker.host, broker.port, VALGRIND_CONCURRENCY_SCALE, 240],
             valgrind=True, timeout=330)
    cprog.assert_valgrind_clean(r)
    _check_concurrency(r, VALGRIND_CONCURRENCY_SCALE)


@pytest.mark.timeout(120)
def test_outbox_bound_under_concurrent_burst(concurrency_prog, broker):
    r = _run(concurrency_prog, [broker.host, broker.port], timeout=90,
             env={"EQ1_TEST_PARTS": "e"})
    _assert_all_passed(r, min_checks=5)
    e = _result(r, "e")
    assert e["accepted"] <= e["outbox_limit"], e


HEADER_USER = r"""
#include "eq1.h"
#include "eq1.h" /* twice: the include guard must make this harmless */

static void on_message(void *user_data, const eq1_mqtt_message *message)
{
    (void)user_data;
    (void)message;
}

static void on_delivery(void *user_data, eq1_token token, eq1_status status, const char *detail)
{
    (void)user_data;
    (void)token;
    (void)status;
    (void)detail;
}

static void on_connection(void *user_data, const eq1_mqtt_connection_event *event)
{
    (void)user_data;
    (void)event;
}

int main(void)
{
    eq1_mqtt_message_cb m = on_message;
    eq1_mqtt_delivery_cb d = on_delivery;
    eq1_mqtt_connection_cb c = on_connection;
    eq1_mqtt_stats *stats = 0;
    eq1_status status = EQ1_STATUS_OK;
    enum eq1_connection_state state = EQ1_CONNECTION_STATE_CONNECTED;
    (void)m;
    (void)d;
    (void)c;
    (void)stats;
    (void)state;
    eq1_mqtt_options *options = eq1_mqtt_options_new();
    if (options == 0)
        return 3;
    eq1_mqtt_options_free(options);
    if (eq1_version_number() != EQ1_VERSION_NUMBER)
        return 1;
    if (eq1_status_str((int)status) == 0)
        return 2;
    return EQ1_QUEUE_REJECT_NEW + EQ1_MQTT_V311 - 4;
}
"""


@pytest.mark.parametrize("lang", ["c11", "c++17"])
def test_header_compiles_and_links(lang, libdir, tmp_path):
    """eq1.h compiles with -Wall -Wextra -Werror -pedantic as C11 and C++17, included twice,
    and the declarations link against the library (extern "C" in C++)."""
    src = tmp_path / ("header_user.c" if lang == "c11" else "header_user.cpp")
    src.write_text(HEADER_USER)
    compile_ = cprog.compile_c if lang == "c11" else cprog.compile_cxx
    exe = compile_([src], out=tmp_path / "header_user")
    r = cprog.run(exe, timeout=30)
    assert r.returncode == 0, f"exit {r.returncode}\n{r.stdout}\n{r.stderr}"

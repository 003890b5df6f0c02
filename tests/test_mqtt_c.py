"""The C library against a real mosquitto: the design's examples, round trips at every QoS,
retained messages and wills, on MQTT 3.1.1 and 5.0, and connect failures with their causes."""

from __future__ import annotations

import pytest

from harness import cprog
from harness.background import Background
from harness.broker import TEST_PASSWORD, TEST_USER

VERSIONS = [pytest.param(4, id="v311"), pytest.param(5, id="v5")]


@pytest.fixture(scope="module")
def probe(built_library):
    return cprog.compile_c([cprog.repo_root() / "tests/c/eq1probe.c"])


def run_probe(probe, broker, *args, host=None, timeout=120, valgrind=False):
    return cprog.run(probe, ["--host", host or broker.host, "--port", broker.port, *args],
                     timeout=timeout, valgrind=valgrind)


def line(output: str, prefix: str) -> str:
    found = [l for l in output.splitlines() if l.startswith(prefix)]
    assert found, f"no {prefix!r} line in:\n{output}"
    return found[-1]


def fields(summary: str) -> dict[str, str]:
    return dict(kv.split("=", 1) for kv in summary.split()[1:] if "=" in kv)


# ---------------------------------------------------------------- the design's examples

def test_quickstart_example_receives_its_own_message(built_library, broker):
    exe = cprog.compile_c([cprog.repo_root() / "examples-c/quickstart.c"])
    r = cprog.run(exe, [broker.host, broker.port], timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Received: [test/topic] Hello MQTT!" in r.stdout
    assert r.stdout.rstrip().endswith("Disconnected")


@pytest.mark.valgrind
def test_quickstart_example_is_clean_under_valgrind(built_library, broker):
    exe = cprog.compile_c([cprog.repo_root() / "examples-c/quickstart.c"])
    r = cprog.run(exe, [broker.host, broker.port], timeout=180, valgrind=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Received: [test/topic] Hello MQTT!" in r.stdout
    cprog.assert_valgrind_clean(r)


def test_secure_example_over_tls_with_password_publishes_retained(built_library, tls_broker,
                                                                  pki, probe):
    exe = cprog.compile_c([cprog.repo_root() / "examples-c/secure.c"])
    r = cprog.run(exe, ["localhost", tls_broker.port, pki.ca_crt, TEST_USER, TEST_PASSWORD],
                  timeout=60, valgrind=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Connected securely" in r.stdout and "Disconnected" in r.stdout
    cprog.assert_valgrind_clean(r)
    # A late subscriber gets the retained "online"; the clean disconnect sent no will.
    sub = run_probe(probe, tls_broker, "--ca", pki.ca_crt, "--user", TEST_USER, "--pass",
                    TEST_PASSWORD, "--topic", "device/status", "--expect", "1", "--wait-ms",
                    "5000", "sub", host="localhost")
    assert sub.returncode == 0, sub.stdout
    assert "retain=1 len=6 payload=online" in line(sub.stdout, "MSG")


def test_request_response_example_matches_replies_by_correlation(built_library, broker):
    exe = cprog.compile_c([cprog.repo_root() / "examples-c/request_response.c"])
    r = cprog.run(exe, [broker.host, broker.port], timeout=120, valgrind=True)
    assert r.returncode == 0, r.stdout + r.stderr
    for i, word in enumerate(["one", "two", "three"]):
        assert f"Reply to request {i}: echo: {word}" in r.stdout
    assert "Async reply: echo: four" in r.stdout
    assert "4 of 4 requests answered" in r.stdout
    cprog.assert_valgrind_clean(r)


def test_will_retained_example_reports_presence(built_library, broker, probe):
    exe = cprog.compile_c([cprog.repo_root() / "examples-c/will_retained.c"])
    topic = "devices/press-7/status"
    with Background([exe, broker.host, broker.port, "press-7", 60]) as device:
        device.wait_for_line(f"{topic} = online")
        late = run_probe(probe, broker, "--topic", topic, "--expect", "1", "--wait-ms", "5000",
                         "sub")
        assert "retain=1 len=6 payload=online" in line(late.stdout, "MSG")
        device.kill()  # vanishes without DISCONNECT: the broker publishes the retained will
    later = run_probe(probe, broker, "--topic", topic, "--expect", "1", "--wait-ms", "5000",
                      "sub")
    assert "retain=1 len=7 payload=offline" in line(later.stdout, "MSG")
    # A clean run says "offline" itself before it leaves.
    clean = cprog.run(exe, [broker.host, broker.port, "press-8", 0], timeout=60)
    assert clean.returncode == 0 and "offline (said so before leaving)" in clean.stdout


# ---------------------------------------------------------------- round trips

@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_round_trip_at_each_qos(probe, broker, version, qos):
    r = run_probe(probe, broker, "--version", version, "--qos", qos, "--count", 2000,
                  "--topic", f"rt/{version}/{qos}", "roundtrip")
    assert r.returncode == 0, r.stdout + r.stderr
    s = fields(line(r.stdout, "SUMMARY"))
    assert s["missing"] == "0", s
    assert s["granted"] == str(qos)
    if qos == 2:
        assert s["duplicates"] == "0", "QoS 2 must deliver exactly once"


@pytest.mark.valgrind
@pytest.mark.parametrize("version", VERSIONS)
def test_round_trip_qos2_is_clean_under_valgrind(probe, broker, version):
    r = run_probe(probe, broker, "--version", version, "--qos", 2, "--count", 200,
                  "--topic", "rt/vg", "roundtrip", timeout=240, valgrind=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert fields(line(r.stdout, "SUMMARY"))["duplicates"] == "0"
    cprog.assert_valgrind_clean(r)


# ---------------------------------------------------------------- retained messages

@pytest.mark.parametrize("version", VERSIONS)
def test_retained_reaches_late_subscriber_and_empty_publish_clears_it(probe, broker, version):
    topic = f"retained/{version}"
    pub = run_probe(probe, broker, "--version", version, "--topic", topic, "--retain",
                    "--payload", "kept", "pub")
    assert pub.returncode == 0, pub.stdout
    late = run_probe(probe, broker, "--version", version, "--topic", topic, "--expect", "1",
                     "--wait-ms", "5000", "sub")
    assert "retain=1 len=4 payload=kept" in line(late.stdout, "MSG")

    clear = run_probe(probe, broker, "--version", version, "--topic", topic, "--retain",
                      "--payload", "", "pub")
    assert clear.returncode == 0, clear.stdout
    later = run_probe(probe, broker, "--version", version, "--topic", topic, "--wait-ms",
                      "1500", "sub")
    assert fields(line(later.stdout, "SUMMARY"))["received"] == "0", later.stdout


# ---------------------------------------------------------------- wills

def _watch_will(probe, broker, topic, version):
    watcher = Background([probe, "--host", broker.host, "--port", broker.port, "--version",
                          version, "--topic", topic, "--wait-ms", "8000", "--expect", "1",
                          "sub"])
    watcher.wait_for_line("READY")
    return watcher


@pytest.mark.parametrize("version", VERSIONS)
def test_will_is_published_when_the_client_dies(probe, broker, version):
    topic = f"will/{version}/killed"
    with _watch_will(probe, broker, topic, version) as watcher:
        with Background([probe, "--host", broker.host, "--port", broker.port, "--version",
                         version, "--will-topic", topic, "--will-payload", "offline",
                         "--will-qos", "1", "--wait-ms", "60000", "hold"]) as victim:
            victim.wait_for_line("READY")
            victim.kill()  # SIGKILL: no DISCONNECT reaches the broker
        msg = watcher.wait_for_line("MSG", timeout=15)
        assert f"topic={topic}" in msg and "payload=offline" in msg


@pytest.mark.parametrize("version", VERSIONS)
def test_will_is_not_published_after_a_clean_disconnect(probe, broker, version):
    topic = f"will/{version}/clean"
    with _watch_will(probe, broker, topic, version) as watcher:
        with Background([probe, "--host", broker.host, "--port", broker.port, "--version",
                         version, "--will-topic", topic, "--will-payload", "offline",
                         "--disconnect-after", "300", "hold"]) as polite:
            polite.wait_for_line("DISCONNECTED")
            assert polite.wait() == 0, polite.output
        assert watcher.wait(timeout=20) == 0
        assert "SUMMARY received=0" in watcher.output, watcher.output


# ---------------------------------------------------------------- connect failures

def connect_status(probe, broker, *args, host=None):
    r = run_probe(probe, broker, *args, "connect", host=host)
    status = line(r.stdout, "STATUS").split(" ", 2)
    return status[1], (status[2] if len(status) > 2 else "")


@pytest.mark.parametrize("version", VERSIONS)
def test_wrong_password_is_refused_with_its_cause(probe, auth_broker, version):
    status, message = connect_status(probe, auth_broker, "--version", version, "--user",
                                     TEST_USER, "--pass", "wrong")
    # mosquitto answers "not authorized" (5 / 0x87) for any failed password check.
    assert status == "EQ1_STATUS_NOT_AUTHORIZED"
    assert "not authorized" in message and f"user '{TEST_USER}'" in message
    assert "password is wrong" in message


@pytest.mark.parametrize("version", VERSIONS)
def test_unknown_user_is_refused_with_its_cause(probe, auth_broker, version):
    status, message = connect_status(probe, auth_broker, "--version", version, "--user",
                                     "nobody", "--pass", "x")
    assert status == "EQ1_STATUS_NOT_AUTHORIZED"
    assert "user 'nobody'" in message


def test_anonymous_is_refused_when_the_broker_requires_a_user(probe, auth_broker):
    status, message = connect_status(probe, auth_broker)
    assert status == "EQ1_STATUS_NOT_AUTHORIZED"
    assert "no user name was sent" in message


def test_right_password_connects(probe, auth_broker):
    assert connect_status(probe, auth_broker, "--user", TEST_USER, "--pass",
                          TEST_PASSWORD)[0] == "EQ1_STATUS_OK"


def test_nothing_listening_is_connection_refused(probe, broker):
    port = broker.port
    broker.close()
    r = cprog.run(probe, ["--host", "127.0.0.1", "--port", port, "connect"], timeout=30)
    status = line(r.stdout, "STATUS").split(" ", 2)
    assert status[1] == "EQ1_STATUS_CONNECTION_REFUSED"
    assert f"127.0.0.1:{port}" in status[2]


def test_unresolvable_host_is_dns_failed(probe, broker):
    status, message = connect_status(probe, broker, host="no-such-host.invalid")
    assert status == "EQ1_STATUS_DNS_FAILED" and "no-such-host.invalid" in message


def tls_args(pki, *extra):
    return ["--ca", pki.ca_crt, "--user", TEST_USER, "--pass", TEST_PASSWORD, *extra]


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
def test_tls_with_the_right_ca_connects(probe, tls_broker, pki, host):
    assert connect_status(probe, tls_broker, *tls_args(pki), host=host)[0] == "EQ1_STATUS_OK"


def test_tls_wrong_ca_is_unknown_issuer(probe, tls_broker, pki):
    status, message = connect_status(probe, tls_broker, "--ca", pki.other_ca_crt, "--user",
                                     TEST_USER, "--pass", TEST_PASSWORD, host="localhost")
    assert status == "EQ1_STATUS_TLS_UNKNOWN_ISSUER"
    assert "certificate verify failed: unknown issuer" in message


def test_tls_hostname_mismatch(probe, tls_broker_factory, pki):
    b = tls_broker_factory(cert=pki.wrong_host_crt, key=pki.wrong_host_key)
    status, message = connect_status(probe, b, *tls_args(pki), host="localhost")
    assert status == "EQ1_STATUS_TLS_HOSTNAME_MISMATCH"
    assert "hostname mismatch" in message and "localhost" in message
    # Turning hostname verification off (chain still verified) lets it through.
    assert connect_status(probe, b, *tls_args(pki, "--no-verify-hostname"),
                          host="localhost")[0] == "EQ1_STATUS_OK"


def test_tls_expired_certificate(probe, tls_broker_factory, pki):
    b = tls_broker_factory(cert=pki.expired_crt, key=pki.expired_key)
    status, message = connect_status(probe, b, *tls_args(pki), host="localhost")
    assert status == "EQ1_STATUS_TLS_CERT_EXPIRED"
    assert "expired" in message


def test_tls_insecure_switch_accepts_any_certificate(probe, tls_broker_factory, pki):
    b = tls_broker_factory(cert=pki.expired_crt, key=pki.expired_key)
    status, _ = connect_status(probe, b, "--insecure", "--user", TEST_USER, "--pass",
                               TEST_PASSWORD, host="localhost")
    assert status == "EQ1_STATUS_OK"


def test_tls_client_certificate_required_but_missing(probe, tls_broker_factory, pki):
    b = tls_broker_factory(require_certificate=True)
    status, message = connect_status(probe, b, *tls_args(pki), host="localhost")
    assert status == "EQ1_STATUS_TLS_CLIENT_CERT_REJECTED"
    assert "client certificate" in message


def test_tls_untrusted_client_certificate_is_rejected(probe, tls_broker_factory, pki):
    b = tls_broker_factory(require_certificate=True)
    status, message = connect_status(probe, b, *tls_args(
        pki, "--cert", pki.untrusted_client_crt, "--key", pki.untrusted_client_key),
        host="localhost")
    assert status == "EQ1_STATUS_TLS_CLIENT_CERT_REJECTED"


@pytest.mark.parametrize("key", ["plain", "encrypted"])
def test_tls_client_certificate_connects(probe, tls_broker_factory, pki, key):
    b = tls_broker_factory(require_certificate=True)
    key_args = (["--key", pki.client_key] if key == "plain" else
                ["--key", pki.client_encrypted_key, "--keypass", pki.client_key_password])
    status, message = connect_status(probe, b, *tls_args(pki, "--cert", pki.client_crt,
                                                         *key_args), host="localhost")
    assert status == "EQ1_STATUS_OK", message


def test_tls_encrypted_key_with_wrong_password_is_tls_key_password(probe, tls_broker_factory,
                                                                   pki):
    b = tls_broker_factory(require_certificate=True)
    status, message = connect_status(probe, b, *tls_args(
        pki, "--cert", pki.client_crt, "--key", pki.client_encrypted_key, "--keypass", "nope"),
        host="localhost")
    assert status == "EQ1_STATUS_TLS_KEY_PASSWORD"
    assert "cannot decrypt client key" in message and "password is wrong" in message


@pytest.mark.parametrize("tls_version", ["tlsv1.2", "tlsv1.3"])
def test_tls_1_2_and_1_3_both_work(probe, tls_broker_factory, pki, tls_version):
    b = tls_broker_factory(extra_conf=f"tls_version {tls_version}\n")
    assert connect_status(probe, b, *tls_args(pki), host="localhost")[0] == "EQ1_STATUS_OK"


# ---------------------------------------------------------------- engine properties

def test_ready_packets_leave_in_batched_writes(probe, broker, tmp_path):
    """2,000 QoS 0 publishes queued at once must not cost 2,000 write system calls."""
    trace = tmp_path / "writes.txt"
    r = cprog.run("strace", ["-f", "-qq", "-e", "trace=write,writev,sendto,sendmsg", "-o", trace,
                             probe, "--host", broker.host, "--port", broker.port, "--qos", 0,
                             "--count", 2000, "--topic", "batch", "roundtrip"], timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert fields(line(r.stdout, "SUMMARY"))["missing"] == "0"
    writes = [l for l in trace.read_text().splitlines()
              if any(f"{call}(" in l for call in ("write", "writev", "sendto", "sendmsg"))]
    # Each PUBLISH is 18 bytes; one write per packet would mean >= 2,000 calls.
    print(f"{len(writes)} write calls for 2,000 publishes")
    assert len(writes) < 400, f"{len(writes)} writes for 2,000 publishes"


def test_publish_above_the_brokers_maximum_packet_size_is_refused(probe, broker_factory):
    b = broker_factory(extra_conf="max_packet_size 1000\n")
    r = run_probe(probe, b, "--version", 5, "--topic", "big", "--payload", "x" * 2000, "pub")
    assert "FAIL publish: EQ1_STATUS_PAYLOAD_TOO_LARGE" in r.stdout, r.stdout
    assert "maximum packet size is 1000" in r.stdout
    ok = run_probe(probe, b, "--version", 5, "--topic", "big", "--payload", "x" * 900, "pub")
    assert "PUBLISHED" in ok.stdout, ok.stdout


@pytest.mark.parametrize("valgrind", [False, True], ids=["plain", "valgrind"])
def test_mqtt5_publish_properties_travel_through_the_broker(built_library, broker, valgrind):
    exe = cprog.compile_c([cprog.repo_root() / "tests/c/test_v5_properties.c"])
    r = cprog.run(exe, [broker.host, broker.port], timeout=180, valgrind=valgrind)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUMMARY 0 failures" in r.stdout
    if valgrind:
        cprog.assert_valgrind_clean(r)

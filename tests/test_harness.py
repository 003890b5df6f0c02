"""Self-tests of the shared harness: brokers, PKI, proxy, watchdog (no libeq1 needed)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import signal
import socket
import subprocess
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from harness.broker import TEST_PASSWORD, TEST_USER
from harness.ports import free_port
from harness.rawmqtt import RawClient
from harness.watchdog import TimeLimitExceeded, time_limit

TIMEOUT = 20


def pub(port, *args, topic="harness/t", msg="hello", host="127.0.0.1"):
    return subprocess.run(["mosquitto_pub", "-h", host, "-p", str(port), "-t", topic,
                           "-m", msg, *args], capture_output=True, text=True, timeout=TIMEOUT)


def start_sub(broker, *, topic="harness/t", qos=0, count=1, cid="harness-sub", port=None):
    """Start mosquitto_sub and return once the broker has logged its SUBSCRIBE."""
    mark = broker.log_mark()
    p = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port or broker.port),
                          "-t", topic, "-q", str(qos), "-i", cid, "-C", str(count),
                          "-W", str(TIMEOUT)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # The subscribe log line is "<client id> <qos> <topic>"; waiting for it (not the
    # connect line) means no message published afterwards can miss the subscriber.
    broker.wait_for_log(f"{cid} {qos} {topic}", since=mark)
    return p


def finish(p, timeout=TIMEOUT):
    try:
        return p.communicate(timeout=timeout)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()


def port_accepts(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


# ---- ports ---------------------------------------------------------------
def test_free_port_is_bindable_and_not_mqtt_default():
    port = free_port()
    assert port not in (1883, 8883)
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


# ---- brokers ---------------------------------------------------------------
def test_anonymous_broker_round_trip(broker):
    assert broker.host == "127.0.0.1" and broker.port not in (1883, 8883)
    sub = start_sub(broker)
    assert pub(broker.port).returncode == 0
    out, err = finish(sub)
    assert out.strip() == "hello", err
    assert "New client connected" in broker.log_text()


def test_auth_broker_checks_password(auth_broker):
    assert pub(auth_broker.port, "-u", TEST_USER, "-P", "wrong").returncode != 0
    assert pub(auth_broker.port).returncode != 0, "anonymous must be refused"
    r = pub(auth_broker.port, "-u", TEST_USER, "-P", TEST_PASSWORD)
    assert r.returncode == 0, r.stderr


def test_tls_broker_verifies_with_ca(tls_broker, pki):
    for host in ("127.0.0.1", "localhost"):
        r = pub(tls_broker.port, "--cafile", pki.ca_crt, "-u", TEST_USER, "-P", TEST_PASSWORD,
                host=host)
        assert r.returncode == 0, (host, r.stderr)
    r = pub(tls_broker.port, "--cafile", pki.other_ca_crt, "-u", TEST_USER, "-P", TEST_PASSWORD)
    assert r.returncode != 0
    r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{tls_broker.port}",
                        "-CAfile", pki.other_ca_crt, "-verify_return_error", "-brief"],
                       input="", capture_output=True, text=True, timeout=TIMEOUT)
    assert r.returncode != 0 and "verify" in r.stderr.lower()


def test_tls_broker_factory_requires_client_cert(tls_broker_factory, pki):
    b = tls_broker_factory(require_certificate=True)
    base = ["--cafile", pki.ca_crt, "-u", TEST_USER, "-P", TEST_PASSWORD]
    assert pub(b.port, *base).returncode != 0
    assert pub(b.port, *base, "--cert", pki.untrusted_client_crt,
               "--key", pki.untrusted_client_key).returncode != 0
    r = pub(b.port, *base, "--cert", pki.client_crt, "--key", pki.client_key)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("which", ["wrong_host", "expired"])
def test_bad_server_certs_fail_verification(tls_broker_factory, pki, which):
    b = tls_broker_factory(cert=getattr(pki, f"{which}_crt"), key=getattr(pki, f"{which}_key"))
    r = pub(b.port, "--cafile", pki.ca_crt, "-u", TEST_USER, "-P", TEST_PASSWORD,
            host="localhost")
    assert r.returncode != 0


def test_kill_and_restart_same_port(broker):
    port = broker.port
    broker.kill()
    assert not broker.running and not port_accepts(port)
    broker.restart()
    assert broker.port == port and broker.running
    assert pub(port).returncode == 0


def test_persistence_survives_sigkill(broker_factory):
    b = broker_factory(persistence=True)
    assert pub(b.port, "-r", "-q", "1", msg="kept").returncode == 0
    time.sleep(0.5)  # autosave_on_changes: the db write follows the message
    b.kill()
    b.restart()
    r = subprocess.run(["mosquitto_sub", "-h", b.host, "-p", str(b.port), "-t", "harness/t",
                        "-C", "1", "-W", "5"], capture_output=True, text=True, timeout=TIMEOUT)
    assert r.stdout.strip() == "kept", b.log_text()


def test_slow_subscriber_gets_every_qos1_message(broker_factory):
    # Guards max_queued_messages: mosquitto's default (1000) would drop most of these.
    n = 20000
    b = broker_factory(log_types=("error", "warning", "notice", "subscribe"))
    sub = start_sub(b, qos=1, count=n, cid="slow-sub")
    sub.send_signal(signal.SIGSTOP)
    try:
        with RawClient(b.host, b.port, "burst") as c:
            c.publish_burst("harness/t", n, qos=1)
    finally:
        sub.send_signal(signal.SIGCONT)
    out, _ = finish(sub)
    assert out.split() == [str(i) for i in range(n)]
    assert "dropped" not in b.log_text()


def test_auth_log_and_wait_for_log(auth_broker):
    mark = auth_broker.log_mark()
    pub(auth_broker.port, "-u", TEST_USER, "-P", "wrong", "-i", "bad-login")
    # mosquitto logs a refused client as <unknown>: the id is not in the line.
    auth_broker.wait_for_log("not authorised", since=mark)


# ---- proxy -----------------------------------------------------------------
def test_proxy_round_trip_and_cut(broker, proxy):
    sub = start_sub(broker, port=proxy.port)
    assert pub(proxy.port).returncode == 0
    out, _ = finish(sub)
    assert out.strip() == "hello"
    assert proxy.accepted == 2 and len(proxy.accept_times) == 2

    c = RawClient("127.0.0.1", proxy.port, "cut-me", timeout=5)
    mark = broker.log_mark()
    assert proxy.cut() == 1
    with pytest.raises(OSError):
        c.read_packet()  # RST from the proxy: ConnectionResetError
    broker.wait_for_log("cut-me", since=mark)  # broker saw its side die too
    c.sock.close()
    assert pub(proxy.port).returncode == 0, "proxy keeps listening after cut()"


def test_proxy_refuse_blackhole_and_retarget(broker_factory, proxy_factory):
    a, b = broker_factory(), broker_factory()
    p = proxy_factory(a.host, a.port)
    p.refuse(True)
    assert pub(p.port).returncode != 0
    p.refuse(False)
    assert p.accepted == 1

    c = RawClient("127.0.0.1", p.port, "held", timeout=1)
    p.blackhole(True)
    c.sock.sendall(b"\xc0\x00")  # PINGREQ: must not be answered while blackholed
    with pytest.raises(socket.timeout):
        c.read_packet()
    p.blackhole(False)
    assert c.read_packet()[0] == 13  # PINGRESP arrives once traffic flows again
    c.disconnect()

    mark = b.log_mark()
    p.set_target(b.host, b.port)
    assert pub(p.port, "-i", "retargeted").returncode == 0
    b.wait_for_log("retargeted", since=mark)


def test_proxy_throughput(broker, proxy):
    n = 20000
    with RawClient("127.0.0.1", proxy.port, "fast") as c:
        seconds = c.publish_burst("harness/t", n, qos=1)
    assert n / seconds > 5000, f"{n / seconds:.0f} msg/s through the proxy"


# ---- certificates ----------------------------------------------------------
def _cert(path):
    with open(path, "rb") as f:
        return x509.load_pem_x509_certificate(f.read())


def _sans(cert):
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return set(ext.get_values_for_type(x509.DNSName)) | \
        {str(i) for i in ext.get_values_for_type(x509.IPAddress)}


def test_certificates(pki):
    now = dt.datetime.now(dt.timezone.utc)
    server = _cert(pki.server_crt)
    assert _sans(server) == {"localhost", "127.0.0.1", "::1"}
    assert server.not_valid_before_utc <= now - dt.timedelta(hours=23)
    assert now + dt.timedelta(days=29) <= server.not_valid_after_utc
    eku = server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in eku

    assert _sans(_cert(pki.wrong_host_crt)) == {"wrong.example.invalid"}
    expired = _cert(pki.expired_crt)
    assert expired.not_valid_after_utc < now and "localhost" in _sans(expired)

    for ca_path in (pki.ca_crt, pki.other_ca_crt):
        ca = _cert(ca_path)
        assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        assert ca.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    assert _cert(pki.ca_crt).subject != _cert(pki.other_ca_crt).subject

    client = _cert(pki.client_crt)
    assert client.subject.rfc4514_string().endswith("CN=eq1-client") or \
        "CN=eq1-client" in client.subject.rfc4514_string()
    assert ExtendedKeyUsageOID.CLIENT_AUTH in \
        client.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value

    with open(pki.client_encrypted_key, "rb") as f:
        pem = f.read()
    assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    key = serialization.load_pem_private_key(pem, pki.client_key_password.encode())
    assert key.public_key() == client.public_key()
    for path, issuer in ((pki.server_crt, pki.ca_crt), (pki.client_crt, pki.ca_crt),
                         (pki.wrong_host_crt, pki.ca_crt)):
        _cert(path).verify_directly_issued_by(_cert(issuer))


def test_ipv6_loopback_san_is_an_ip():
    assert ipaddress.ip_address("::1").is_loopback


# ---- watchdog --------------------------------------------------------------
def test_time_limit_interrupts_blocking_call():
    start = time.monotonic()
    with pytest.raises(TimeLimitExceeded):
        with time_limit(0.3):
            time.sleep(5)
    assert time.monotonic() - start < 2


# ---- C program helpers (against a stand-in libeq1, so no cargo build needed) ----
@pytest.fixture
def fake_libdir(tmp_path, monkeypatch):
    src = tmp_path / "fake.c"
    src.write_text("int eq1_fake_answer(void);\nint eq1_fake_answer(void) { return 42; }\n")
    lib = tmp_path / "lib"
    lib.mkdir()
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(lib / "libeq1.so"), str(src)],
                   check=True, timeout=TIMEOUT)
    monkeypatch.setenv("EQ1_LIB_DIR", str(lib))
    return lib


def test_compile_run_and_valgrind(fake_libdir, tmp_path):
    from harness import cprog
    assert cprog.library_dir() == fake_libdir
    src = tmp_path / "ok.c"
    src.write_text('#include <stdio.h>\n#include <stdlib.h>\nint eq1_fake_answer(void);\n'
                   'int main(int argc, char **argv) {\n'
                   '  char *p = malloc(16); free(p);\n'
                   '  printf("%d %s %s\\n", eq1_fake_answer(), argc > 1 ? argv[1] : "-",\n'
                   '         getenv("EQ1_T") ? getenv("EQ1_T") : "-");\n  return 0;\n}\n')
    exe = cprog.compile_c([src], tmp_path / "ok")
    assert cprog.compile_c([src]).exists()  # served from the session cache
    r = cprog.run(exe, ["arg"], env={"EQ1_T": "env"})
    assert r.returncode == 0 and r.stdout.strip() == "42 arg env"
    r = cprog.run(exe, valgrind=True)
    cprog.assert_valgrind_clean(r)

    leak = tmp_path / "leak.c"
    leak.write_text('#include <stdlib.h>\nint main(void) {\n'
                    '  volatile char *p = malloc(64); p[0] = 1; p = 0; return 0;\n}\n')
    r = cprog.run(cprog.compile_c([leak]), valgrind=True)
    with pytest.raises(AssertionError):
        cprog.assert_valgrind_clean(r)


def test_compile_error_and_timeout(fake_libdir, tmp_path):
    from harness import cprog
    bad = tmp_path / "bad.c"
    bad.write_text("int main(void) { int unused; return 0; }\n")  # -Werror
    with pytest.raises(RuntimeError, match="unused"):
        cprog.compile_c([bad])
    cxx = tmp_path / "ok.cpp"
    cxx.write_text('#include <string>\nextern "C" int eq1_fake_answer(void);\n'
                   "int main() { return std::to_string(eq1_fake_answer()) == \"42\" ? 0 : 1; }\n")
    assert cprog.run(cprog.compile_cxx([cxx])).returncode == 0
    start = time.monotonic()
    with pytest.raises(cprog.ProgramTimeout):
        cprog.run("sleep", ["30"], timeout=0.5)
    assert time.monotonic() - start < 10

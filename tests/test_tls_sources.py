"""TLS beyond files, from C (tests/c/eq1tls.c) against real servers: CA, client certificate
and key from memory buffers to mosquitto; keys made by the openssl CLI in every format it
writes by default (encrypted PKCS#8 with AES-128/256-CBC or 3DES, traditional encrypted PEM,
traditional unencrypted RSA/EC, DER); ALPN and SNI as a real `openssl s_server` sees them
(mosquitto 2.0.11 does not log ALPN); certificate revocation lists on both sides (mosquitto's
`crlfile` refuses our revoked client certificate, our CRL check refuses a revoked server
certificate); and a client key that only a signing callback holds (OpenSSL's libcrypto signs
in the C program, standing in for a PKCS#11 token), under valgrind."""

from __future__ import annotations

import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness import cprog
from harness.broker import TEST_PASSWORD, TEST_USER
from harness.ports import free_port

KEY_PASSWORD = "openssl-pass"


@pytest.fixture(scope="module")
def tls_prog(built_library):
    return cprog.compile_c([cprog.repo_root() / "tests/c/eq1tls.c"], extra_flags=["-lcrypto"])


def run_tls(prog, *args, valgrind=False, timeout=120):
    return cprog.run(prog, ["connect", *map(str, args)], valgrind=valgrind, timeout=timeout)


def outcome(result) -> tuple[str, str]:
    """(status name, detail) of the STATUS line."""
    lines = [l for l in result.stdout.splitlines() if l.startswith("STATUS ")]
    assert lines, f"no STATUS line:\n{result.stdout}\n{result.stderr[-3000:]}"
    _, name, *detail = lines[-1].split(" ", 2)
    return name, (detail[0] if detail else "")


def creds(broker):
    return ["--host", "127.0.0.1", "--port", broker.port, "--user", TEST_USER,
            "--pass", TEST_PASSWORD]


# ---------------------------------------------------------------- keys made by openssl

def openssl(*args: str) -> None:
    r = subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"openssl {' '.join(args)}:\n{r.stderr}"


@dataclass(frozen=True)
class KeyCase:
    """A key file, the certificate it belongs to, and its password (None: unencrypted)."""
    key: str
    cert: str
    password: str | None


def sign_cert(pki, key: Path, password: str | None, out: Path, cn: str) -> None:
    """A client certificate for `key`, signed by the test CA with the openssl CLI."""
    csr = out.with_suffix(".csr")
    ext = out.with_suffix(".ext")
    ext.write_text("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                   "extendedKeyUsage=clientAuth\n")
    passin = ["-passin", f"pass:{password}"] if password else []
    openssl("req", "-new", "-key", str(key), *passin, "-subj", f"/O=EQ-1 Network tests/CN={cn}",
            "-out", str(csr))
    openssl("x509", "-req", "-in", str(csr), "-CA", pki.ca_crt, "-CAkey", pki.ca_key,
            "-set_serial", str(secrets.randbits(63)), "-days", "30", "-extfile", str(ext),
            "-out", str(out))


@pytest.fixture(scope="module")
def openssl_keys(pki, tmp_path_factory) -> dict[str, KeyCase]:
    d = tmp_path_factory.mktemp("openssl-keys")
    pw = ["-passout", f"pass:{KEY_PASSWORD}"]
    cases: dict[str, KeyCase] = {}

    # `openssl genrsa -aes256` as OpenSSL 3 writes it (encrypted PKCS#8) and as older
    # releases and `-traditional` write it (Proc-Type: 4,ENCRYPTED / DEK-Info AES-256-CBC).
    genrsa = d / "genrsa_aes256.key"
    openssl("genrsa", "-aes256", *pw, "-out", str(genrsa), "2048")
    sign_cert(pki, genrsa, KEY_PASSWORD, d / "genrsa.crt", "eq1-genrsa")
    cases["genrsa -aes256"] = KeyCase(str(genrsa), str(d / "genrsa.crt"), KEY_PASSWORD)

    trad = d / "genrsa_traditional_aes256.key"
    openssl("genrsa", "-traditional", "-aes256", *pw, "-out", str(trad), "2048")
    assert "DEK-Info: AES-256-CBC" in trad.read_text()
    rsa_crt = d / "rsa.crt"
    sign_cert(pki, trad, KEY_PASSWORD, rsa_crt, "eq1-rsa")
    cases["genrsa -traditional -aes256"] = KeyCase(str(trad), str(rsa_crt), KEY_PASSWORD)

    # The same RSA key in the other forms.
    passin = ["-passin", f"pass:{KEY_PASSWORD}"]
    variants = {
        "rsa -traditional -des3": ["rsa", "-traditional", "-des3", *pw],
        "rsa -traditional -aes128": ["rsa", "-traditional", "-aes128", *pw],
        "rsa -traditional (unencrypted)": ["rsa", "-traditional"],
        "pkcs8 -topk8 -v2 des3": ["pkcs8", "-topk8", "-v2", "des3", *pw],
        "pkcs8 -topk8 -v2 aes-256-cbc": ["pkcs8", "-topk8", "-v2", "aes-256-cbc", *pw],
        "pkcs8 -topk8 -v2 aes-128-cbc": ["pkcs8", "-topk8", "-v2", "aes-128-cbc", *pw],
        "pkcs8 -topk8 -v2 aes-256-cbc -v2prf hmacWithSHA1":
            ["pkcs8", "-topk8", "-v2", "aes-256-cbc", "-v2prf", "hmacWithSHA1", *pw],
        "pkcs8 -topk8 -v2 aes-256-cbc -outform DER":
            ["pkcs8", "-topk8", "-v2", "aes-256-cbc", "-outform", "DER", *pw],
    }
    for i, (name, args) in enumerate(variants.items()):
        out = d / f"rsa_variant_{i}.key"
        openssl(*args, "-in", str(trad), *passin, "-out", str(out))
        encrypted = "-passout" in args
        cases[name] = KeyCase(str(out), str(rsa_crt), KEY_PASSWORD if encrypted else None)

    # The test PKI's EC client key (PKCS#8) as traditional SEC1, plain and encrypted.
    sec1 = d / "ec_sec1.key"
    openssl("ec", "-in", pki.client_key, "-out", str(sec1))
    assert "BEGIN EC PRIVATE KEY" in sec1.read_text()
    cases["ec (traditional SEC1)"] = KeyCase(str(sec1), pki.client_crt, None)
    sec1_enc = d / "ec_sec1_aes256.key"
    openssl("ec", "-in", pki.client_key, "-aes256", *pw, "-out", str(sec1_enc))
    assert "Proc-Type: 4,ENCRYPTED" in sec1_enc.read_text()
    cases["ec -aes256 (traditional)"] = KeyCase(str(sec1_enc), pki.client_crt, KEY_PASSWORD)
    return cases


KEY_CASES = [
    "genrsa -aes256", "genrsa -traditional -aes256", "rsa -traditional -des3",
    "rsa -traditional -aes128", "rsa -traditional (unencrypted)", "pkcs8 -topk8 -v2 des3",
    "pkcs8 -topk8 -v2 aes-256-cbc", "pkcs8 -topk8 -v2 aes-128-cbc",
    "pkcs8 -topk8 -v2 aes-256-cbc -v2prf hmacWithSHA1",
    "pkcs8 -topk8 -v2 aes-256-cbc -outform DER", "ec (traditional SEC1)",
    "ec -aes256 (traditional)",
]


@pytest.mark.parametrize("case", KEY_CASES)
def test_openssl_key_loads_from_memory_and_connects_with_client_cert_auth(
        tls_prog, tls_broker_factory, pki, openssl_keys, case):
    k = openssl_keys[case]
    b = tls_broker_factory(require_certificate=True)
    args = [*creds(b), "--ca-data", pki.ca_crt, "--cert-data", k.cert, "--key-data", k.key]
    if k.password:
        args += ["--keypass", k.password]
    r = run_tls(tls_prog, *args)
    assert outcome(r) == ("EQ1_STATUS_OK", ""), r.stdout
    assert "ROUNDTRIP ok" in r.stdout


@pytest.mark.parametrize("case", [c for c in KEY_CASES if "unencrypted" not in c
                                  and "SEC1)" not in c])
def test_openssl_key_with_a_wrong_password_is_tls_key_password(tls_prog, tls_broker_factory,
                                                               pki, openssl_keys, case):
    k = openssl_keys[case]
    b = tls_broker_factory(require_certificate=True)
    r = run_tls(tls_prog, *creds(b), "--ca-data", pki.ca_crt, "--cert-data", k.cert,
                "--key-data", k.key, "--keypass", "not-the-password")
    assert "SETUP client_cert_data" in r.stdout, "refused when set, not at connect"
    status, detail = outcome(r)
    assert status == "EQ1_STATUS_TLS_KEY_PASSWORD", detail
    assert "password is wrong" in detail


def test_encrypted_key_without_password_is_tls_key_password(tls_prog, tls_broker_factory, pki,
                                                            openssl_keys):
    k = openssl_keys["pkcs8 -topk8 -v2 des3"]
    b = tls_broker_factory(require_certificate=True)
    r = run_tls(tls_prog, *creds(b), "--ca-data", pki.ca_crt, "--cert-data", k.cert,
                "--key-data", k.key)
    status, detail = outcome(r)
    assert status == "EQ1_STATUS_TLS_KEY_PASSWORD" and "no password" in detail, detail


@pytest.mark.parametrize("case", ["genrsa -traditional -aes256", "pkcs8 -topk8 -v2 des3"])
def test_openssl_key_files_load_at_connect(tls_prog, tls_broker_factory, pki, openssl_keys,
                                           case):
    """The file API decodes the same formats (when the client connects)."""
    k = openssl_keys[case]
    b = tls_broker_factory(require_certificate=True)
    r = run_tls(tls_prog, *creds(b), "--ca", pki.ca_crt, "--cert", k.cert, "--key", k.key,
                "--keypass", k.password)
    assert outcome(r) == ("EQ1_STATUS_OK", ""), r.stdout
    r = run_tls(tls_prog, *creds(b), "--ca", pki.ca_crt, "--cert", k.cert, "--key", k.key,
                "--keypass", "wrong")
    status, detail = outcome(r)
    assert "SETUP" not in r.stdout
    assert status == "EQ1_STATUS_TLS_KEY_PASSWORD" and "password is wrong" in detail, detail


# ---------------------------------------------------------------- memory buffers

def test_ca_from_memory_authenticates_the_server(tls_prog, tls_broker, pki):
    r = run_tls(tls_prog, *creds(tls_broker), "--ca-data", pki.ca_crt, valgrind=True)
    cprog.assert_valgrind_clean(r)
    assert outcome(r) == ("EQ1_STATUS_OK", ""), r.stdout
    assert "ROUNDTRIP ok" in r.stdout
    # The wrong CA from memory is refused like from a file.
    r = run_tls(tls_prog, *creds(tls_broker), "--ca-data", pki.other_ca_crt)
    assert outcome(r)[0] == "EQ1_STATUS_TLS_UNKNOWN_ISSUER"


def test_client_certificate_from_memory_passes_require_certificate(tls_prog,
                                                                   tls_broker_factory, pki):
    b = tls_broker_factory(require_certificate=True)
    r = run_tls(tls_prog, *creds(b), "--ca-data", pki.ca_crt, "--cert-data", pki.client_crt,
                "--key-data", pki.client_encrypted_key, "--keypass", pki.client_key_password,
                valgrind=True)
    cprog.assert_valgrind_clean(r)
    assert outcome(r) == ("EQ1_STATUS_OK", ""), r.stdout
    assert "ROUNDTRIP ok" in r.stdout
    # Without the client certificate the same broker refuses us.
    r = run_tls(tls_prog, *creds(b), "--ca-data", pki.ca_crt)
    assert outcome(r)[0] == "EQ1_STATUS_TLS_CLIENT_CERT_REJECTED"


# ---------------------------------------------------------------- CRLs

@pytest.mark.parametrize("source", ["--crl-data", "--crl-file"])
def test_revoked_server_certificate_is_refused_by_our_crl_check(tls_prog, tls_broker_factory,
                                                                pki, source):
    revoked = tls_broker_factory(cert=pki.revoked_server_crt, key=pki.revoked_server_key)
    # Without the CRL the revoked certificate is otherwise valid...
    r = run_tls(tls_prog, *creds(revoked), "--ca-data", pki.ca_crt)
    assert outcome(r)[0] == "EQ1_STATUS_OK", r.stdout
    # ...with it the handshake is refused, with its own status.
    r = run_tls(tls_prog, *creds(revoked), "--ca-data", pki.ca_crt, source, pki.crl_pem)
    status, detail = outcome(r)
    assert status == "EQ1_STATUS_TLS_CERT_REVOKED", detail
    assert "revoked" in detail
    # A server whose certificate the CRL does not list still connects.
    good = tls_broker_factory()
    r = run_tls(tls_prog, *creds(good), "--ca-data", pki.ca_crt, source, pki.crl_pem)
    assert outcome(r)[0] == "EQ1_STATUS_OK", r.stdout


def test_revoked_client_certificate_is_refused_by_mosquitto_crlfile(tls_prog,
                                                                     tls_broker_factory, pki):
    b = tls_broker_factory(require_certificate=True, extra_conf=f"crlfile {pki.crl_pem}\n")
    r = run_tls(tls_prog, *creds(b), "--ca-data", pki.ca_crt, "--cert-data",
                pki.revoked_client_crt, "--key-data", pki.revoked_client_key)
    status, detail = outcome(r)
    assert status == "EQ1_STATUS_TLS_CLIENT_CERT_REVOKED", detail
    # The same broker accepts a client certificate the CRL does not list.
    r = run_tls(tls_prog, *creds(b), "--ca-data", pki.ca_crt, "--cert-data", pki.client_crt,
                "--key-data", pki.client_key)
    assert outcome(r)[0] == "EQ1_STATUS_OK", r.stdout


# ---------------------------------------------------------------- ALPN and SNI

class SServer:
    """A real `openssl s_server` for one connection; its output tells what the client sent."""

    def __init__(self, pki, *extra: str) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            ["openssl", "s_server", "-accept", f"127.0.0.1:{self.port}", "-cert",
             pki.server_crt, "-key", pki.server_key, "-naccept", "1", *extra],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.head = []
        assert self.proc.stdout is not None
        for line in self.proc.stdout:  # it prints ACCEPT (flushed) once it listens
            self.head.append(line)
            if line.strip() == "ACCEPT":
                break
        else:
            raise AssertionError(f"s_server did not start: {''.join(self.head)}")

    def output(self) -> str:
        """Everything it printed, after the one connection ended."""
        try:
            rest = self.proc.communicate(timeout=20)[0]
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rest = self.proc.communicate()[0]
        return "".join(self.head) + rest


@pytest.fixture
def s_server(pki):
    made: list[SServer] = []

    def make(*extra: str) -> SServer:
        made.append(SServer(pki, *extra))
        return made[-1]

    yield make
    for s in made:
        if s.proc.poll() is None:
            s.proc.kill()
            s.proc.communicate()


def test_alpn_protocols_reach_the_server(tls_prog, pki, s_server):
    srv = s_server("-alpn", "mqtt")
    r = run_tls(tls_prog, "--host", "127.0.0.1", "--port", srv.port, "--ca-data", pki.ca_crt,
                "--alpn", "mqtt,x-eq1-test", "--timeout", "3000")
    # s_server speaks no MQTT: the connect times out after the handshake.
    assert outcome(r)[0] == "EQ1_STATUS_TIMEOUT", r.stdout
    out = srv.output()
    assert "ALPN protocols advertised by the client: mqtt, x-eq1-test" in out, out
    assert "ALPN protocols selected: mqtt" in out, out


def test_server_name_override_is_sent_as_sni_and_verified(tls_prog, tls_broker_factory, pki,
                                                          s_server):
    srv = s_server("-servername", "localhost", "-cert2", pki.server_crt, "-key2",
                   pki.server_key)
    r = run_tls(tls_prog, "--host", "127.0.0.1", "--port", srv.port, "--ca-data", pki.ca_crt,
                "--server-name", "localhost", "--timeout", "3000")
    assert outcome(r)[0] == "EQ1_STATUS_TIMEOUT", r.stdout
    out = srv.output()
    assert 'Hostname in TLS extension: "localhost"' in out, out
    # Verified too: a broker whose certificate names only wrong.example.invalid is accepted
    # at 127.0.0.1 with that server name, and refused without it.
    b = tls_broker_factory(cert=pki.wrong_host_crt, key=pki.wrong_host_key)
    r = run_tls(tls_prog, *creds(b), "--ca-data", pki.ca_crt)
    assert outcome(r)[0] == "EQ1_STATUS_TLS_HOSTNAME_MISMATCH"
    r = run_tls(tls_prog, *creds(b), "--ca-data", pki.ca_crt, "--server-name",
                "wrong.example.invalid")
    assert outcome(r)[0] == "EQ1_STATUS_OK", r.stdout


# ---------------------------------------------------------------- the signing callback

@pytest.mark.parametrize("key", ["ec", "rsa"])
def test_signer_callback_holds_the_only_copy_of_the_key(tls_prog, tls_broker_factory, pki,
                                                        openssl_keys, key):
    """mosquitto with require_certificate: the library gets the chain only; the key stays in
    the C program, which signs with libcrypto inside the callback."""
    if key == "ec":
        cert, key_file = pki.client_crt, pki.client_key
        want = "ecdsa_p256_sha256"
    else:
        cert, key_file = openssl_keys["rsa -traditional (unencrypted)"].cert, \
            openssl_keys["rsa -traditional (unencrypted)"].key
        want = "rsa_pss_sha256"
    b = tls_broker_factory(require_certificate=True)
    r = run_tls(tls_prog, *creds(b), "--ca-data", pki.ca_crt, "--signer-cert", cert,
                "--signer-key", key_file, valgrind=True)
    cprog.assert_valgrind_clean(r)
    assert outcome(r) == ("EQ1_STATUS_OK", ""), r.stdout
    assert "ROUNDTRIP ok" in r.stdout
    signer = [l for l in r.stdout.splitlines() if l.startswith("SIGNER ")][-1]
    assert "calls=1 " in signer and signer.endswith(f"schemes={want}"), signer


def test_failing_signer_fails_the_handshake_with_its_status(tls_prog, tls_broker_factory, pki):
    b = tls_broker_factory(require_certificate=True)
    r = run_tls(tls_prog, *creds(b), "--ca-data", pki.ca_crt, "--signer-cert", pki.client_crt,
                "--signer-key", pki.client_key, "--signer-fail", valgrind=True)
    cprog.assert_valgrind_clean(r)
    status, detail = outcome(r)
    assert status == "EQ1_STATUS_TLS_SIGNER_FAILED", detail
    assert "signing callback" in detail
    assert "calls=1 " in r.stdout


# ---------------------------------------------------------------- argument checks

def test_tls_setters_check_their_arguments_under_valgrind(tls_prog, pki):
    r = cprog.run(tls_prog, ["badinput", pki.dir], valgrind=True, timeout=300)
    cprog.assert_valgrind_clean(r)
    assert r.returncode == 0, r.stdout
    assert "FAIL" not in r.stdout, r.stdout
    assert "SUMMARY: " in r.stdout and ", 0 failed" in r.stdout, r.stdout

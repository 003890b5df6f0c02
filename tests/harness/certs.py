"""Generate a throwaway test PKI (CA, server, client and deliberately bad certs) as PEM files."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CLIENT_KEY_PASSWORD = "keypass"


@dataclass(frozen=True)
class Pki:
    """Paths (as str, ready for configs and argv) of every generated file."""

    dir: str
    ca_crt: str
    ca_key: str
    server_crt: str
    server_key: str
    other_ca_crt: str
    other_ca_key: str
    wrong_host_crt: str
    wrong_host_key: str
    expired_crt: str
    expired_key: str
    client_crt: str
    client_key: str
    client_encrypted_key: str
    # A client cert signed by other_ca: rejected by a broker with require_certificate.
    untrusted_client_crt: str
    untrusted_client_key: str
    # Signed by ca and listed in crl.pem (a CRL of ca, PEM): a server and a client certificate.
    revoked_server_crt: str
    revoked_server_key: str
    revoked_client_crt: str
    revoked_client_key: str
    crl_pem: str
    client_key_password: str = CLIENT_KEY_PASSWORD


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _key() -> ec.EllipticCurvePrivateKey:
    # P-256 keeps session setup fast; RSA generation would dominate startup.
    return ec.generate_private_key(ec.SECP256R1())


def _name(cn: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "EQ-1 Network tests"),
        x509.NameAttribute(NameOID.COMMON_NAME, cn),
    ])


def _write_key(path: Path, key, password: bytes | None = None) -> None:
    enc = (serialization.BestAvailableEncryption(password) if password
           else serialization.NoEncryption())
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8, enc))


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _make_ca(cn: str):
    key = _key()
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True,
            crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _make_leaf(ca_cert, ca_key, cn: str, *, sans: list[x509.GeneralName] | None,
               eku, not_before: dt.datetime, not_after: dt.datetime):
    key = _key()
    b = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=True, key_cert_sign=False,
            crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            ca_key.public_key()), critical=False)
    )
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return b.sign(ca_key, hashes.SHA256()), key


def _make_crl(ca_cert, ca_key, revoked: list[x509.Certificate]) -> bytes:
    """A CRL of `ca_cert` listing `revoked`, PEM."""
    now = _now()
    b = (x509.CertificateRevocationListBuilder()
         .issuer_name(ca_cert.subject)
         .last_update(now - dt.timedelta(days=1))
         .next_update(now + dt.timedelta(days=30))
         .add_extension(x509.CRLNumber(1), critical=False)
         .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
             ca_key.public_key()), critical=False))
    for cert in revoked:
        b = b.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(cert.serial_number)
            .revocation_date(now - dt.timedelta(hours=1))
            .build())
    return b.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def _localhost_sans() -> list[x509.GeneralName]:
    return [x509.DNSName("localhost"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.IPAddress(ipaddress.ip_address("::1"))]


def generate_pki(directory) -> Pki:
    """Write the whole test PKI into `directory` and return the file paths."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    p = {name: d / name for name in (
        "ca.crt", "ca.key", "server.crt", "server.key", "other_ca.crt", "other_ca.key",
        "wrong_host.crt", "wrong_host.key", "expired.crt", "expired.key",
        "client.crt", "client.key", "client_encrypted.key",
        "untrusted_client.crt", "untrusted_client.key",
        "revoked_server.crt", "revoked_server.key", "revoked_client.crt", "revoked_client.key",
        "crl.pem")}
    now = _now()
    valid = dict(not_before=now - dt.timedelta(days=1), not_after=now + dt.timedelta(days=30))
    server_eku = ExtendedKeyUsageOID.SERVER_AUTH
    client_eku = ExtendedKeyUsageOID.CLIENT_AUTH

    ca_cert, ca_key = _make_ca("EQ-1 Test CA")
    _write_cert(p["ca.crt"], ca_cert)
    _write_key(p["ca.key"], ca_key)

    other_cert, other_key = _make_ca("EQ-1 Unrelated CA")
    _write_cert(p["other_ca.crt"], other_cert)
    _write_key(p["other_ca.key"], other_key)

    leaves = [
        ("server", ca_cert, ca_key, "localhost", _localhost_sans(), server_eku, valid),
        ("wrong_host", ca_cert, ca_key, "wrong.example.invalid",
         [x509.DNSName("wrong.example.invalid")], server_eku, valid),
        ("expired", ca_cert, ca_key, "localhost", _localhost_sans()[:2], server_eku,
         dict(not_before=now - dt.timedelta(days=30), not_after=now - dt.timedelta(days=1))),
        ("client", ca_cert, ca_key, "eq1-client", None, client_eku, valid),
        ("untrusted_client", other_cert, other_key, "eq1-untrusted-client", None,
         client_eku, valid),
        ("revoked_server", ca_cert, ca_key, "localhost", _localhost_sans(), server_eku, valid),
        ("revoked_client", ca_cert, ca_key, "eq1-revoked-client", None, client_eku, valid),
    ]
    keys = {}
    certs = {}
    for stem, icert, ikey, cn, sans, eku, validity in leaves:
        cert, key = _make_leaf(icert, ikey, cn, sans=sans, eku=eku, **validity)
        _write_cert(p[f"{stem}.crt"], cert)
        _write_key(p[f"{stem}.key"], key)
        keys[stem] = key
        certs[stem] = cert
    p["crl.pem"].write_bytes(_make_crl(ca_cert, ca_key, [certs["revoked_server"],
                                                         certs["revoked_client"]]))
    _write_key(p["client_encrypted.key"], keys["client"], CLIENT_KEY_PASSWORD.encode())

    return Pki(
        dir=str(d),
        ca_crt=str(p["ca.crt"]), ca_key=str(p["ca.key"]),
        server_crt=str(p["server.crt"]), server_key=str(p["server.key"]),
        other_ca_crt=str(p["other_ca.crt"]), other_ca_key=str(p["other_ca.key"]),
        wrong_host_crt=str(p["wrong_host.crt"]), wrong_host_key=str(p["wrong_host.key"]),
        expired_crt=str(p["expired.crt"]), expired_key=str(p["expired.key"]),
        client_crt=str(p["client.crt"]), client_key=str(p["client.key"]),
        client_encrypted_key=str(p["client_encrypted.key"]),
        untrusted_client_crt=str(p["untrusted_client.crt"]),
        untrusted_client_key=str(p["untrusted_client.key"]),
        revoked_server_crt=str(p["revoked_server.crt"]),
        revoked_server_key=str(p["revoked_server.key"]),
        revoked_client_crt=str(p["revoked_client.crt"]),
        revoked_client_key=str(p["revoked_client.key"]),
        crl_pem=str(p["crl.pem"]),
    )

"""MQTTConfig's TLS fields beyond files against real mosquitto brokers: ca_data, cert_data,
key_data and key_password from memory, tls_crl (bytes or a path), tls_server_name, tls_alpn,
and how their mistakes are reported."""

from __future__ import annotations

from pathlib import Path

import pytest

from communicator import (
    MQTTConfig,
    ProtocolAuthenticationError,
    ProtocolConnectionError,
    ProtocolValidationError,
    Status,
)

CREDS = dict(username="mqtt_user", password="secure_password")


def data(path: str) -> bytes:
    return Path(path).read_bytes()


def test_ca_cert_and_encrypted_key_from_memory(make_client, tls_broker_factory, pki, inbox):
    b = tls_broker_factory(require_certificate=True)
    mqtt = make_client(broker_address="localhost", port=b.port, ca_data=data(pki.ca_crt),
                       cert_data=data(pki.client_crt),
                       key_data=data(pki.client_encrypted_key),
                       key_password=pki.client_key_password, tls_alpn=["mqtt"], **CREDS)
    assert mqtt.config.tls is True
    mqtt.connect()
    mqtt.subscribe("tls/data", inbox, qos=1)
    mqtt.publish("tls/data", "from memory", qos=1)
    assert inbox.wait_for(1) == [("tls/data", b"from memory")]
    assert "key_password='***'" in repr(mqtt.config) and "key_data='***'" in repr(mqtt.config)


def test_wrong_key_password_is_tls_key_password(make_client, tls_broker_factory, pki):
    b = tls_broker_factory(require_certificate=True)
    with pytest.raises(ProtocolValidationError) as info:
        make_client(broker_address="localhost", port=b.port, ca_data=data(pki.ca_crt),
                    cert_data=data(pki.client_crt), key_data=data(pki.client_encrypted_key),
                    key_password="wrong", **CREDS).connect()
    assert info.value.status == Status.TLS_KEY_PASSWORD


@pytest.mark.parametrize("form", ["bytes", "path"])
def test_crl_refuses_a_revoked_broker_certificate(make_client, tls_broker_factory, pki, form):
    b = tls_broker_factory(cert=pki.revoked_server_crt, key=pki.revoked_server_key)
    crl = data(pki.crl_pem) if form == "bytes" else pki.crl_pem
    with pytest.raises(ProtocolConnectionError) as info:
        make_client(broker_address="localhost", port=b.port, ca_data=data(pki.ca_crt),
                    tls_crl=crl, **CREDS).connect()
    assert info.value.status == Status.TLS_CERT_REVOKED
    assert make_client(broker_address="localhost", port=b.port, ca_data=data(pki.ca_crt),
                       **CREDS).connect()


def test_revoked_client_certificate_is_refused_by_the_broker(make_client, tls_broker_factory,
                                                             pki):
    b = tls_broker_factory(require_certificate=True, extra_conf=f"crlfile {pki.crl_pem}\n")
    with pytest.raises(ProtocolAuthenticationError) as info:
        make_client(broker_address="localhost", port=b.port, ca_certs=pki.ca_crt,
                    cert_data=data(pki.revoked_client_crt),
                    key_data=data(pki.revoked_client_key), **CREDS).connect()
    assert info.value.status == Status.TLS_CLIENT_CERT_REVOKED


def test_server_name_replaces_the_host_in_verification(make_client, tls_broker_factory, pki):
    b = tls_broker_factory(cert=pki.wrong_host_crt, key=pki.wrong_host_key)
    assert make_client(broker_address="127.0.0.1", port=b.port, ca_certs=pki.ca_crt,
                       tls_server_name="wrong.example.invalid", **CREDS).connect()


@pytest.mark.parametrize("fields, needle", [
    (dict(ca_data=b""), "ca_data must be non-empty bytes"),
    (dict(ca_data="not bytes"), "ca_data must be non-empty bytes"),
    (dict(cert_data=b"x"), "cert_data and key_data go together"),
    (dict(cert_data=b"x", key_data=b"y", key_password=3), "key_password must be a str"),
    (dict(ca_certs="/nonexistent", ca_data=b"x"), "is not a readable file"),
    (dict(key_password="pw", ca_data=b"x"), "key_password needs key_data"),
    (dict(tls_alpn="mqtt", ca_data=b"x"), "tls_alpn must be a list"),
    (dict(tls_alpn=[""], ca_data=b"x"), "1..255 bytes"),
    (dict(tls_server_name="", ca_data=b"x"), "tls_server_name is empty"),
    (dict(tls_crl=b"", ca_data=b"x"), "tls_crl is empty"),
    (dict(tls_crl="/nonexistent/crl.pem", ca_data=b"x"), "is not a readable file"),
    (dict(tls=False, tls_alpn=["mqtt"]), "need(s) TLS"),
])
def test_bad_tls_fields_are_validation_errors(fields, needle):
    with pytest.raises(ProtocolValidationError) as info:
        MQTTConfig(**fields)
    assert needle in str(info.value)


def test_garbage_ca_data_is_refused_by_the_library(make_client, tls_broker, pki):
    with pytest.raises(ProtocolValidationError) as info:
        make_client(broker_address="localhost", port=tls_broker.port,
                    ca_data=b"-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----\n",
                    **CREDS).connect()
    assert info.value.status == Status.TLS_CONFIG


def test_signer_callback_signs_with_a_key_the_library_never_sees(make_client,
                                                                 tls_broker_factory, pki,
                                                                 inbox):
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from communicator import TlsSignatureScheme

    key = serialization.load_pem_private_key(data(pki.client_key), password=None)
    asked: list[int] = []

    def sign(scheme: int, message: bytes) -> bytes:
        asked.append(scheme)
        assert scheme == TlsSignatureScheme.ECDSA_P256_SHA256
        return key.sign(message, ec.ECDSA(hashes.SHA256()))

    b = tls_broker_factory(require_certificate=True)
    mqtt = make_client(broker_address="localhost", port=b.port, ca_certs=pki.ca_crt,
                       tls_signer_cert=data(pki.client_crt), tls_signer=sign, **CREDS)
    mqtt.connect()
    assert asked == [TlsSignatureScheme.ECDSA_P256_SHA256]
    mqtt.subscribe("tls/signer", inbox, qos=1)
    mqtt.publish("tls/signer", "signed outside", qos=1)
    assert inbox.wait_for(1) == [("tls/signer", b"signed outside")]


def test_a_failing_signer_is_tls_signer_failed(make_client, tls_broker_factory, pki):
    def refuse(scheme: int, message: bytes) -> bytes:
        raise RuntimeError("token unplugged")

    b = tls_broker_factory(require_certificate=True)
    with pytest.raises(ProtocolAuthenticationError) as info:
        make_client(broker_address="localhost", port=b.port, ca_certs=pki.ca_crt,
                    tls_signer_cert=data(pki.client_crt), tls_signer=refuse,
                    **CREDS).connect()
    assert info.value.status == Status.TLS_SIGNER_FAILED

"""MQTT 3.1.1 / 5.0 for the framework: MQTTConfig (the settings, validated when created) and
MQTTProtocol (a PubSubProtocol over libeq1's thread-safe client).

libeq1 does the protocol work on its own threads: connecting, keep-alive, automatic
reconnection with subscription restore, the offline queue and QoS 1/2 retries. Callbacks
(subscriptions, ``on_connection_change``, ``on_delivery``) run on the client's dispatcher
thread, one at a time, in the order the events happened; an exception raised by one is logged
on the ``communicator`` logger and the client carries on.
"""

from __future__ import annotations

import ctypes
import enum
import os
import threading
import weakref
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Mapping, Optional, Sequence, Tuple, Union

from communicator import _native
from communicator.common.exceptions import (
    ProtocolDecodeError,
    ProtocolError,
    ProtocolValidationError,
    Status,
    error_from_status,
)
from communicator.common.logging import logger, sync_native_log_level
from communicator.interfaces.protocol import MessageCallback, Payload, PubSubProtocol

__all__ = ["AuthChallenge", "ConnAckInfo", "ConnectionEvent", "ConnectionState", "DeliveryReport",
           "MQTTConfig", "MQTTProtocol", "RetainHandling", "SubscribeAck", "SubscribeOptions",
           "SubscribeResult",
           "UnsubscribeAck", "UnsubscribeResult"]

PathLike = Union[str, "os.PathLike[str]"]


class TlsSignatureScheme(enum.IntEnum):
    """What ``MQTTConfig.tls_signer`` is asked to sign with (``eq1_tls_signature_scheme``:
    the TLS SignatureScheme code points). The data is the message, not its hash; ECDSA
    signatures are DER-encoded, RSA-PSS uses MGF1 with the same hash and a salt as long as
    the hash."""

    RSA_PKCS1_SHA256 = 0x0401
    RSA_PKCS1_SHA384 = 0x0501
    RSA_PKCS1_SHA512 = 0x0601
    RSA_PSS_SHA256 = 0x0804
    RSA_PSS_SHA384 = 0x0805
    RSA_PSS_SHA512 = 0x0806
    ECDSA_P256_SHA256 = 0x0403
    ECDSA_P384_SHA384 = 0x0503
    ECDSA_P521_SHA512 = 0x0603
    ED25519 = 0x0807
#: A failover broker: (host, port) or (host, port, tls).
#: A failover broker: (host, port), (host, port, tls), or a URI string
#: ("mqtts://host:8883", "wss://host/mqtt", "unix:///run/mosquitto.sock").
BrokerSpec = Union[str, Tuple[str, int], Tuple[str, int, bool]]

#: The URI schemes of brokers, and whether each means TLS.
BROKER_SCHEMES = {"mqtt": False, "tcp": False, "mqtts": True, "ssl": True, "tls": True,
                  "ws": False, "wss": True, "unix": False}
TRANSPORTS = ("tcp", "websockets")


def _uri_scheme(text: str) -> Optional[str]:
    """The scheme of a broker URI (lower case), or None when ``text`` is a plain host."""
    if "://" not in text:
        return None
    return text.split("://", 1)[0].lower()

QUEUE_POLICIES = {"reject_new": _native.EQ1_QUEUE_REJECT_NEW,
                  "drop_oldest": _native.EQ1_QUEUE_DROP_OLDEST}
DURABILITIES = {"none": _native.EQ1_DURABILITY_NONE, "sync": _native.EQ1_DURABILITY_SYNC,
                "batched": _native.EQ1_DURABILITY_BATCHED}
_MAX_MS = 2**31 - 1
# After a clean disconnect, how long disconnect() waits for callbacks of messages that arrived
# before it to finish (they run on the dispatcher thread, ahead of the "disconnected" event).
_DRAIN_TIMEOUT = 5.0


def _invalid(detail: str, status: int = Status.INVALID_ARGUMENT) -> ProtocolValidationError:
    return ProtocolValidationError(detail, status)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_int(name: str, value: Any, low: int, high: int) -> None:
    if not _is_int(value) or not low <= value <= high:
        raise _invalid(f"{name} must be an integer in {low}..{high}, not {value!r}")


def _check_bool(name: str, value: Any) -> None:
    # Only a real bool: bool("false") is True, which would silently turn e.g. tls_insecure on.
    if not isinstance(value, bool):
        raise _invalid(f"{name} must be True or False, not {value!r}")


def _check_seconds(name: str, value: Any, allow_zero: bool = False) -> None:
    if not _is_number(value) or value < 0 or (value == 0 and not allow_zero):
        raise _invalid(f"{name} must be a number of seconds > 0, not {value!r}")


def _check_text(name: str, value: Any, status: int = Status.INVALID_ARGUMENT) -> None:
    if not isinstance(value, str):
        raise _invalid(f"{name} must be a str, not {type(value).__name__}", status)
    if "\0" in value:
        raise _invalid(f"{name} contains a NUL character", status)
    if len(value.encode("utf-8", errors="surrogatepass")) > _native.MAX_STRING_LEN:
        raise _invalid(f"{name} is longer than 65,535 bytes", status)


def _check_file(name: str, value: Any) -> None:
    if not isinstance(value, (str, os.PathLike)):
        raise _invalid(f"{name} must be a path, not {type(value).__name__}", Status.TLS_CONFIG)
    if not os.path.isfile(value):
        raise _invalid(f"{name} '{os.fspath(value)}' is not a readable file", Status.TLS_CONFIG)


def _to_ms(seconds: float) -> int:
    return max(1, min(_MAX_MS, int(round(seconds * 1000))))


@dataclass(frozen=True)
class AuthChallenge:
    """One step of MQTT 5.0 enhanced authentication, passed to the authentication callback.

    ``reason_code`` 0x18 (continue): the broker's challenge; return the response data
    (bytes). 0x00 (success): the broker accepted and sent final data to verify (a SCRAM
    server-final); return True when it verifies, False when not.
    """

    method: str
    reason_code: int
    data: bytes
    #: True during reauthenticate(), False during connect().
    reauthenticating: bool


#: ``callback(challenge) -> bytes | bool``: bytes continue the exchange with that response
#: data, True accepts the broker's final data, False (or an exception) fails the exchange
#: (ProtocolAuthenticationError with status AUTH_FAILED). Runs on the dispatcher thread.
AuthCallback = Callable[[AuthChallenge], Union[bytes, bool]]


@dataclass
class MQTTConfig:
    """Settings of one MQTT client. Validated when created (ProtocolValidationError).

    The first six fields are the original design's; timeouts and delays are in seconds.
    """

    broker_address: str = "localhost"
    port: int = 1883
    #: Connect timeout (DNS + TCP + TLS + CONNACK), seconds.
    timeout: float = 60
    username: Optional[str] = None
    password: Optional[str] = None
    #: PEM file of trusted CAs; setting it turns TLS on.
    ca_certs: Optional[PathLike] = None
    #: None: the library generates one ("eq1-" + 16 hex digits); "": the same on MQTT 3.1.1,
    #: while an MQTT 5.0 broker assigns one (see ``client_id`` and ``ConnAckInfo``).
    client_id: Optional[str] = None
    keepalive: int = 60
    clean_session: bool = True
    #: MQTT 5.0 Session Expiry Interval in seconds (None: not sent, the session ends with the
    #: connection). A will delay only works while the session outlives it.
    session_expiry: Optional[int] = None
    #: 4 = MQTT 3.1.1, 5 = MQTT 5.0, 3 = MQTT 3.1 (old brokers; client ids of 1..23 bytes).
    protocol_version: int = 4
    #: MQTT 5.0 enhanced authentication: the method CONNECT names (e.g. "SCRAM-SHA-256"),
    #: its initial data (e.g. a SCRAM client-first), and the callback that answers the
    #: broker's challenges (see AuthChallenge; MQTTProtocol.on_auth replaces it later).
    auth_method: Optional[str] = None
    auth_data: Optional[bytes] = None
    auth_callback: Optional[AuthCallback] = None
    #: TLS for the broker; None: on when ca_certs (or a client certificate) is given. TLS
    #: without ca_certs trusts the system's CA store.
    tls: Optional[bool] = None
    certfile: Optional[PathLike] = None
    keyfile: Optional[PathLike] = None
    keyfile_password: Optional[str] = None
    #: Accept any server certificate. For tests only.
    tls_insecure: bool = False
    tls_verify_hostname: bool = True
    #: Trusted CAs from memory (PEM or DER bytes) instead of ca_certs; turns TLS on.
    ca_data: Optional[bytes] = None
    #: Client certificate chain and key from memory (PEM or DER bytes) instead of
    #: certfile/keyfile. key_password decrypts an encrypted key_data (PKCS#8 with AES or 3DES,
    #: or OpenSSL's traditional "Proc-Type: 4,ENCRYPTED"); a wrong one raises
    #: ProtocolValidationError with TLS_KEY_PASSWORD when the client is created.
    cert_data: Optional[bytes] = None
    key_data: Optional[bytes] = None
    key_password: Optional[str] = None
    #: A client key that never leaves its hardware: tls_signer_cert is the certificate chain
    #: (PEM or DER bytes) and tls_signer(scheme, data) returns the signature of data (bytes)
    #: for the TLS scheme (a TlsSignatureScheme value), or raises / returns None to fail the
    #: handshake (TLS_SIGNER_FAILED). It runs on libeq1's I/O thread during the handshake:
    #: keep it short and do not call the client from it.
    tls_signer_cert: Optional[bytes] = None
    tls_signer: Optional[Callable[[int, bytes], Optional[bytes]]] = None
    #: ALPN protocol ids offered in the handshake, in order (e.g. ["mqtt"] for port 443).
    tls_alpn: Optional[list[str]] = None
    #: The TLS server name (SNI, and the name the certificate must hold) instead of
    #: broker_address.
    tls_server_name: Optional[str] = None
    #: Certificate revocation lists for the broker's certificate: a PEM (or DER) file, or its
    #: bytes. A revoked broker certificate fails the connect with TLS_CERT_REVOKED.
    tls_crl: Optional[Union[PathLike, bytes]] = None
    #: Reconnect automatically (exponential backoff with jitter) after a lost connection.
    reconnect: bool = True
    reconnect_min_delay: float = 0.5
    reconnect_max_delay: float = 30.0
    #: Bounds of the offline queue (publishes not yet sent, e.g. while reconnecting).
    max_queued_messages: int = 100_000
    max_queued_bytes: int = 64 * 1024 * 1024
    #: When the queue is full: "reject_new" (publish raises) or "drop_oldest".
    queue_policy: str = "reject_new"
    #: Accept publishes before the first connect (they are sent once connected).
    queue_before_connect: bool = False
    #: QoS 1/2 publishes awaiting acknowledgement at once.
    inflight_window: int = 20
    #: Largest packet sent or accepted; None: the MQTT maximum.
    max_packet_size: Optional[int] = None
    #: Failover brokers tried after broker_address:port, as (host, port) or (host, port, tls);
    #: tls defaults to the ``tls`` setting.
    brokers: Optional[list[BrokerSpec]] = None
    #: Accept brokers with and without TLS in one list (the primary and ``brokers``) while
    #: ``username``/``password`` are set: they would go in clear to the plaintext ones. Off:
    #: such a config is refused (ProtocolValidationError, TLS_CONFIG).
    allow_plaintext_fallback: bool = False
    #: MQTT 5.0: follow a CONNACK 0x9C / 0x9D Server Reference to another server. Off: the
    #: connect fails with SERVER_MOVED naming the reference.
    follow_redirects: bool = False
    #: QoS of publish/subscribe when none is given (the design's default: 1).
    default_qos: int = 1
    #: Default timeout of subscribe, unsubscribe, disconnect and waiting for a publish, seconds.
    operation_timeout: float = 10.0
    #: MQTT 5.0: send repeated topics as topic aliases, within the broker's Topic Alias Maximum.
    topic_alias_auto: bool = True
    #: request(): the response topic is ``<prefix><client id>`` unless the broker gives
    #: Response Information.
    response_topic_prefix: str = "eq1/response/"
    #: request(): how many requests may wait for their replies at once.
    max_pending_requests: int = 10_000
    #: How broker_address:port and the (host, port) failovers are reached: "tcp" (MQTT over
    #: TCP, TLS on it with ``tls``) or "websockets" (ws://host:port<ws_path>, wss:// with
    #: ``tls``). broker_address may also be a URI naming its own transport:
    #: "mqtt://host:1883", "mqtts://host", "ws://host:9001/mqtt", "wss://host/mqtt",
    #: "unix:///run/mosquitto.sock" (then ``port`` is unused).
    transport: str = "tcp"
    #: The WebSocket request path (with any query) for transport="websockets".
    ws_path: str = "/mqtt"
    #: Extra HTTP headers of the WebSocket upgrade request (e.g. an Authorization token).
    ws_headers: Optional[dict[str, str]] = None
    #: Every TCP, TLS and WebSocket connection through a proxy: "http://user:pass@host:port"
    #: (HTTP CONNECT), "socks5://user:pass@host:port", "socks5h://..." (the proxy resolves
    #: the broker's name). A refused proxy password raises PROXY_AUTH_FAILED.
    proxy: Optional[str] = None
    #: Without ``proxy``: take it from http_proxy / https_proxy / all_proxy / no_proxy
    #: (read when the client is created).
    proxy_from_env: bool = False
    #: The local IP address outgoing connections come from (e.g. "127.0.0.2").
    bind_address: Optional[str] = None
    #: The network interface outgoing connections use (SO_BINDTODEVICE; needs root).
    bind_interface: Optional[str] = None
    #: Store and forward: the directory that keeps the session (accepted QoS 1/2 publishes
    #: until their flow completes, QoS 2 packet ids and stages) across the death of the
    #: process. Needs a client_id. None: off.
    persistence_dir: Optional[PathLike] = None
    #: With persistence_dir: "sync" (publish returns once the message is on disk: survives
    #: power loss), "batched" (written to the OS: a crash of the process loses nothing
    #: publish returned, power loss at most persistence_interval), "none" (off).
    durability: str = "batched"
    #: How often "batched" syncs to disk, seconds (0.001 .. 60).
    persistence_interval: float = 0.1
    #: Largest size of the store on disk in bytes (0: unbounded; otherwise >= 65,536). A full
    #: store follows queue_policy.
    persistence_max_bytes: int = 0
    #: Also keep QoS 0 messages while they wait in the outbox.
    persist_qos0: bool = False

    #: Fields whose value repr() replaces with '***'.
    _SECRET_FIELDS = ("password", "keyfile_password", "proxy", "key_data", "key_password")

    def __repr__(self) -> str:
        shown = []
        for f in fields(self):
            value = getattr(self, f.name)
            text = "'***'" if f.name in self._SECRET_FIELDS and value is not None else repr(value)
            shown.append(f"{f.name}={text}")
        return f"{type(self).__name__}({', '.join(shown)})"

    def __post_init__(self) -> None:
        if self.tls is None:
            scheme = _uri_scheme(self.broker_address) if isinstance(self.broker_address,
                                                                     str) else None
            self.tls = bool(self.ca_certs or self.certfile or self.keyfile
                            or BROKER_SCHEMES.get(scheme or "", False)) or any(
                value is not None
                for value in (self.ca_data, self.cert_data, self.key_data, self.tls_signer_cert))
        self.validate()

    def validate(self) -> None:
        """Checks every field; raises ProtocolValidationError naming the first bad one."""
        _check_text("broker_address", self.broker_address)
        if not self.broker_address:
            raise _invalid("broker_address is empty")
        _check_int("port", self.port, 1, 65535)
        _check_seconds("timeout", self.timeout)
        _check_seconds("operation_timeout", self.operation_timeout)
        if self.username is not None:
            _check_text("username", self.username)
        if self.password is not None:
            _check_text("password", self.password)
            if self.username is None:
                raise _invalid("a password needs a username (MQTT sends no password alone)")
        if self.client_id is not None:
            _check_text("client_id", self.client_id, Status.INVALID_CLIENT_ID)
        _check_int("keepalive", self.keepalive, 0, 65535)
        for name in ("clean_session", "tls_insecure", "tls_verify_hostname", "reconnect",
                     "queue_before_connect", "allow_plaintext_fallback", "topic_alias_auto",
                     "follow_redirects"):
            _check_bool(name, getattr(self, name))
        if not _is_int(self.protocol_version) or self.protocol_version not in (
                _native.EQ1_MQTT_V31, _native.EQ1_MQTT_V311, _native.EQ1_MQTT_V5):
            raise _invalid(f"protocol_version must be 4 (MQTT 3.1.1), 5 (MQTT 5.0) or 3 "
                           f"(MQTT 3.1), not {self.protocol_version!r}")
        if self.protocol_version == _native.EQ1_MQTT_V31 and self.client_id and \
                len(self.client_id.encode("utf-8")) > 23:
            raise _invalid(f"client_id {self.client_id!r} is longer than 23 bytes, the limit "
                           "of MQTT 3.1", Status.INVALID_CLIENT_ID)
        self._validate_auth()
        self._validate_tls()
        self._validate_transport()
        _check_seconds("reconnect_min_delay", self.reconnect_min_delay)
        _check_seconds("reconnect_max_delay", self.reconnect_max_delay)
        if self.reconnect_max_delay < self.reconnect_min_delay:
            raise _invalid(f"reconnect_max_delay ({self.reconnect_max_delay}) is below "
                           f"reconnect_min_delay ({self.reconnect_min_delay})")
        if self.session_expiry is not None:
            _check_int("session_expiry", self.session_expiry, 0, 2**32 - 1)
        _check_int("max_queued_messages", self.max_queued_messages, 1, 2**63 - 1)
        _check_int("max_queued_bytes", self.max_queued_bytes, 1, 2**63 - 1)
        if self.queue_policy not in QUEUE_POLICIES:
            raise _invalid(f"queue_policy must be one of {sorted(QUEUE_POLICIES)}, not "
                           f"{self.queue_policy!r}")
        _check_int("inflight_window", self.inflight_window, 1, 65535)
        if self.max_packet_size is not None:
            _check_int("max_packet_size", self.max_packet_size, 16,
                       _native.MQTT_MAX_PACKET_SIZE)
        _check_int("default_qos", self.default_qos, 0, 2)
        _check_text("response_topic_prefix", self.response_topic_prefix, Status.INVALID_TOPIC)
        _check_int("max_pending_requests", self.max_pending_requests, 1, 1_000_000)
        self._validate_persistence()
        self._check_plaintext_fallback(self.failover_brokers())

    def _validate_persistence(self) -> None:
        if self.durability not in DURABILITIES:
            raise _invalid(f"durability must be one of {sorted(DURABILITIES)}, not "
                           f"{self.durability!r}")
        _check_bool("persist_qos0", self.persist_qos0)
        if not _is_number(self.persistence_interval) or \
                not 0.001 <= self.persistence_interval <= 60:
            raise _invalid(f"persistence_interval must be 0.001 .. 60 seconds, not "
                           f"{self.persistence_interval!r}")
        _check_int("persistence_max_bytes", self.persistence_max_bytes, 0, 2**64 - 1)
        if 0 < self.persistence_max_bytes < 65_536:
            raise _invalid("persistence_max_bytes must be 0 (unbounded) or at least 65,536")
        if self.persistence_dir is None:
            return
        if not isinstance(self.persistence_dir, (str, os.PathLike)) or \
                not os.fspath(self.persistence_dir):
            raise _invalid(f"persistence_dir must be a non-empty path, not "
                           f"{self.persistence_dir!r}")
        if self.durability != "none" and not self.client_id:
            raise _invalid("persistence_dir needs a client_id: the stored session belongs to it")

    def _validate_auth(self) -> None:
        if self.auth_method is not None:
            _check_text("auth_method", self.auth_method)
            if not self.auth_method:
                raise _invalid("auth_method is empty")
            if self.protocol_version != _native.EQ1_MQTT_V5:
                raise _invalid("auth_method (enhanced authentication) needs protocol_version=5")
        if self.auth_data is not None:
            if not isinstance(self.auth_data, (bytes, bytearray)):
                raise _invalid(f"auth_data must be bytes, not {type(self.auth_data).__name__}")
            if self.auth_method is None:
                raise _invalid("auth_data needs an auth_method")
            if len(self.auth_data) > _native.MAX_STRING_LEN:
                raise _invalid("auth_data is longer than 65,535 bytes")
        if self.auth_callback is not None and not callable(self.auth_callback):
            raise _invalid("auth_callback must be callable or None")

    def _validate_transport(self) -> None:
        if self.transport not in TRANSPORTS:
            raise _invalid(f"transport must be one of {TRANSPORTS}, not {self.transport!r}")
        scheme = _uri_scheme(self.broker_address)
        if scheme is not None:
            if scheme not in BROKER_SCHEMES:
                raise _invalid(f"broker_address {self.broker_address!r} has an unknown scheme "
                               f"(use one of {', '.join(BROKER_SCHEMES)})")
            if BROKER_SCHEMES[scheme] and not self.tls:
                raise _invalid(f"broker_address {self.broker_address!r} uses TLS, but tls "
                               "is False")
        _check_text("ws_path", self.ws_path)
        if not self.ws_path.startswith("/"):
            raise _invalid(f"ws_path must start with '/', not {self.ws_path!r}")
        if self.ws_headers is not None:
            if not isinstance(self.ws_headers, Mapping):
                raise _invalid("ws_headers must be a dict of header name -> value")
            for name, value in self.ws_headers.items():
                _check_text("ws_headers name", name)
                _check_text(f"ws_headers[{name!r}]", value)
        for name in ("proxy", "bind_address", "bind_interface"):
            value = getattr(self, name)
            if value is not None:
                _check_text(name, value)
                if not value:
                    raise _invalid(f"{name} is empty (use None)")
        _check_bool("proxy_from_env", self.proxy_from_env)

    def broker_uri(self, host: str, port: int, tls: bool) -> Optional[str]:
        """The URI ``transport`` makes of a (host, port) broker; None for plain TCP."""
        if self.transport != "websockets":
            return None
        bracketed = f"[{host}]" if ":" in host else host
        return f"{'wss' if tls else 'ws'}://{bracketed}:{port}{self.ws_path}"

    def _check_plaintext_fallback(self, failovers: list[tuple[str, int, bool]]) -> None:
        # libeq1 refuses the same at client creation; here it fails when the config is made.
        if self.username is None or self.allow_plaintext_fallback:
            return
        scheme = _uri_scheme(self.broker_address)
        primary_tls = BROKER_SCHEMES.get(scheme, False) if scheme else bool(self.tls)
        brokers = [(self.broker_address, self.port, primary_tls), *failovers]
        plaintext = [f"{host}:{port}" for host, port, tls in brokers if not tls]
        if plaintext and len(plaintext) < len(brokers):
            raise _invalid(f"broker {plaintext[0]} has no TLS while another broker uses TLS: "
                           "the username and password would be sent in clear to it after a "
                           "failover; use TLS for every broker, or set "
                           "allow_plaintext_fallback=True", Status.TLS_CONFIG)

    def _validate_tls(self) -> None:
        if not isinstance(self.tls, bool):
            raise _invalid(f"tls must be True, False or None, not {self.tls!r}")
        tls_only = {"ca_certs": self.ca_certs, "certfile": self.certfile,
                    "keyfile": self.keyfile, "keyfile_password": self.keyfile_password,
                    "tls_insecure": self.tls_insecure or None,
                    "tls_verify_hostname": (not self.tls_verify_hostname) or None,
                    "ca_data": self.ca_data, "cert_data": self.cert_data,
                    "key_data": self.key_data, "key_password": self.key_password,
                    "tls_alpn": self.tls_alpn, "tls_server_name": self.tls_server_name,
                    "tls_crl": self.tls_crl, "tls_signer_cert": self.tls_signer_cert,
                    "tls_signer": self.tls_signer}
        if not self.tls:
            given = [name for name, value in tls_only.items() if value is not None]
            if given:
                raise _invalid(f"{', '.join(given)} need(s) TLS, but tls is False")
            return
        if self.ca_certs is not None:
            _check_file("ca_certs", self.ca_certs)
        if (self.certfile is None) != (self.keyfile is None):
            raise _invalid("certfile and keyfile go together: give both or neither",
                           Status.TLS_CONFIG)
        if self.certfile is not None:
            _check_file("certfile", self.certfile)
            _check_file("keyfile", self.keyfile)
        if self.keyfile_password is not None:
            if self.keyfile is None:
                raise _invalid("keyfile_password needs a keyfile", Status.TLS_CONFIG)
            _check_text("keyfile_password", self.keyfile_password, Status.TLS_CONFIG)
        self._validate_tls_data()

    def _validate_tls_data(self) -> None:
        for name in ("ca_data", "cert_data", "key_data"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, (bytes, bytearray)) or not value):
                raise _invalid(f"{name} must be non-empty bytes (PEM or DER)", Status.TLS_CONFIG)
        if self.ca_data is not None and self.ca_certs is not None:
            raise _invalid("give ca_certs or ca_data, not both", Status.TLS_CONFIG)
        if (self.cert_data is None) != (self.key_data is None):
            raise _invalid("cert_data and key_data go together: give both or neither",
                           Status.TLS_CONFIG)
        if self.cert_data is not None and self.certfile is not None:
            raise _invalid("give certfile/keyfile or cert_data/key_data, not both",
                           Status.TLS_CONFIG)
        if (self.tls_signer_cert is None) != (self.tls_signer is None):
            raise _invalid("tls_signer_cert and tls_signer go together: give both or neither",
                           Status.TLS_CONFIG)
        if self.tls_signer is not None:
            if not callable(self.tls_signer):
                raise _invalid("tls_signer must be callable")
            if not isinstance(self.tls_signer_cert, (bytes, bytearray)) or \
                    not self.tls_signer_cert:
                raise _invalid("tls_signer_cert must be non-empty bytes (PEM or DER)",
                               Status.TLS_CONFIG)
            if self.cert_data is not None or self.certfile is not None:
                raise _invalid("give one client certificate: certfile, cert_data or "
                               "tls_signer_cert", Status.TLS_CONFIG)
        if self.key_password is not None:
            if self.key_data is None:
                raise _invalid("key_password needs key_data (keyfile takes keyfile_password)",
                               Status.TLS_CONFIG)
            _check_text("key_password", self.key_password, Status.TLS_CONFIG)
        if self.tls_alpn is not None:
            if not isinstance(self.tls_alpn, (list, tuple)):
                raise _invalid("tls_alpn must be a list of str")
            for i, protocol in enumerate(self.tls_alpn):
                _check_text(f"tls_alpn[{i}]", protocol)
                if not 1 <= len(protocol.encode("utf-8", errors="surrogatepass")) <= 255:
                    raise _invalid(f"tls_alpn[{i}] must have 1..255 bytes")
        if self.tls_server_name is not None:
            _check_text("tls_server_name", self.tls_server_name)
            if not self.tls_server_name:
                raise _invalid("tls_server_name is empty")
        if self.tls_crl is not None:
            if isinstance(self.tls_crl, (bytes, bytearray)):
                if not self.tls_crl:
                    raise _invalid("tls_crl is empty", Status.TLS_CONFIG)
            else:
                _check_file("tls_crl", self.tls_crl)

    def failover_brokers(self) -> list[tuple[str, int, bool]]:
        """``brokers`` checked and normalized to (host, port, tls); a URI entry becomes
        (uri, 0, tls of its scheme)."""
        if self.brokers is None:
            return []
        if isinstance(self.brokers, (str, bytes)) or not isinstance(self.brokers, Sequence):
            raise _invalid("brokers must be a list of (host, port[, tls]) tuples")
        failovers = []
        for i, entry in enumerate(self.brokers):
            if isinstance(entry, str):
                _check_text(f"brokers[{i}]", entry)
                scheme = _uri_scheme(entry)
                if scheme not in BROKER_SCHEMES:
                    raise _invalid(f"brokers[{i}] {entry!r} is not a broker URI (use one of "
                                   f"{', '.join(s + '://' for s in BROKER_SCHEMES)})")
                failovers.append((entry, 0, BROKER_SCHEMES[scheme]))
                continue
            if not isinstance(entry, (tuple, list)) or len(entry) not in (2, 3):
                raise _invalid(f"brokers[{i}] must be (host, port) or (host, port, tls), not "
                               f"{entry!r}")
            host, port = entry[0], entry[1]
            tls = bool(self.tls) if len(entry) == 2 else entry[2]
            _check_text(f"brokers[{i}] host", host)
            if not host:
                raise _invalid(f"brokers[{i}] host is empty")
            _check_int(f"brokers[{i}] port", port, 1, 65535)
            if not isinstance(tls, bool):
                raise _invalid(f"brokers[{i}] tls must be a bool, not {tls!r}")
            if tls and not self.tls:
                # libeq1 turns TLS on for the primary broker whenever TLS options are set.
                raise _invalid(f"brokers[{i}] uses TLS, which needs tls=True (or ca_certs) for "
                               "the primary broker too")
            failovers.append((host, port, tls))
        return failovers


class ConnectionState(enum.IntEnum):
    """What happened to the connection (``eq1_connection_state``)."""

    CONNECTED = _native.EQ1_CONNECTION_STATE_CONNECTED
    LOST = _native.EQ1_CONNECTION_STATE_LOST
    DISCONNECTED = _native.EQ1_CONNECTION_STATE_DISCONNECTED


@dataclass(frozen=True)
class ConnAckInfo:
    """What the broker said in CONNACK (``ConnectionEvent.connack``). On MQTT 3.1.1 only
    ``session_present`` is known; the rest is None / empty (a limit that is None was not
    announced: MQTT 5.0's default applies)."""

    session_present: bool
    #: The client id the broker assigned (MQTT 5.0, connecting with client_id "").
    assigned_client_id: Optional[str] = None
    #: The keep-alive the broker imposes; the client uses it.
    server_keep_alive: Optional[int] = None
    response_information: Optional[str] = None
    server_reference: Optional[str] = None
    reason_string: Optional[str] = None
    user_properties: list[Tuple[str, str]] = field(default_factory=list)
    session_expiry: Optional[int] = None
    receive_maximum: Optional[int] = None
    maximum_packet_size: Optional[int] = None
    maximum_qos: Optional[int] = None
    retain_available: Optional[bool] = None
    wildcard_available: Optional[bool] = None
    subscription_ids_available: Optional[bool] = None
    shared_available: Optional[bool] = None
    topic_alias_maximum: Optional[int] = None


@dataclass(frozen=True)
class ConnectionEvent:
    """Passed to ``on_connection_change``."""

    state: ConnectionState
    #: Why the connection was lost (None unless state is LOST).
    reason: Optional[ProtocolError]
    #: On CONNECTED: did the broker keep the session?
    session_present: bool
    broker_host: str
    broker_port: int
    #: On CONNECTED: what the broker's CONNACK said.
    connack: Optional[ConnAckInfo] = None
    #: On LOST by an MQTT 5.0 broker's DISCONNECT: its reason code (0 otherwise), reason
    #: string and server reference.
    disconnect_reason_code: int = 0
    disconnect_reason_string: Optional[str] = None
    server_reference: Optional[str] = None

    @property
    def connected(self) -> bool:
        return self.state == ConnectionState.CONNECTED


ConnectionCallback = Callable[[ConnectionEvent], None]


@dataclass
class MessageProperties:
    """MQTT 5.0 PUBLISH properties: pass to publish(..., properties=), and received by a
    subscription made with ``with_properties=True`` (None means absent)."""

    #: True: the payload is UTF-8 text; False: unspecified bytes.
    payload_is_utf8: Optional[bool] = None
    #: Seconds after which the broker drops the message if still undelivered.
    message_expiry: Optional[int] = None
    content_type: Optional[str] = None
    #: Topic the receiver should reply to (request/response).
    response_topic: Optional[str] = None
    correlation_data: Optional[bytes] = None
    user_properties: list[tuple[str, str]] = field(default_factory=list)


PropertiesCallback = Callable[[str, bytes, Optional[MessageProperties]], None]


class RetainHandling(enum.IntEnum):
    """MQTT 5.0: when the broker sends retained messages for a subscription."""

    SEND_AT_SUBSCRIBE = 0
    SEND_IF_NEW = 1
    DO_NOT_SEND = 2


@dataclass(frozen=True)
class SubscribeOptions:
    """MQTT 5.0 subscription options (an MQTT 3.1.1 client refuses any of them set, with
    Status.MQTT5_REQUIRED)."""

    #: The broker does not send this client its own publishes on this subscription.
    no_local: bool = False
    #: Messages keep the retain flag they were published with.
    retain_as_published: bool = False
    #: 0 retained messages at every subscribe, 1 only for a new subscription, 2 never.
    retain_handling: int = RetainHandling.SEND_AT_SUBSCRIBE


@dataclass(frozen=True)
class SubscribeResult:
    """How the broker answered one filter of ``subscribe_many``."""

    topic: str
    #: SUBACK reason code: 0..2 the granted QoS, 0x80 and above a refusal (0x87 not authorized).
    reason_code: int
    #: The granted QoS, None when refused.
    granted_qos: Optional[int]
    #: Status.OK, Status.SUBSCRIBE_REFUSED, ...
    status: int
    #: The subscription identifier its messages are routed by (0: none was sent).
    subscription_id: int

    @property
    def granted(self) -> bool:
        return self.status == Status.OK


@dataclass(frozen=True)
class SubscribeAck:
    """The answer to ``subscribe_many``: per filter in the order given, and the SUBACKs'
    reason string and user properties (MQTT 5.0)."""

    results: list[SubscribeResult]
    reason_string: Optional[str] = None
    user_properties: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class UnsubscribeResult:
    topic: str
    #: UNSUBACK reason code (0x11: no subscription existed; 0 on MQTT 3.1.1).
    reason_code: int
    #: Status.OK (also for 0x11) or Status.UNSUBSCRIBE_REFUSED.
    status: int


@dataclass(frozen=True)
class UnsubscribeAck:
    results: list[UnsubscribeResult]
    reason_string: Optional[str] = None
    user_properties: list[tuple[str, str]] = field(default_factory=list)


#: One entry of ``subscribe_many``: (filter, callback), (filter, callback, qos) or
#: (filter, callback, qos, SubscribeOptions).
SubscriptionSpec = Union[Tuple[str, Any], Tuple[str, Any, int], Tuple[str, Any, int, Any]]


def _options_to_c(qos: int, options: Optional[SubscribeOptions]) -> _native.Eq1SubscribeOptions:
    c = _native.Eq1SubscribeOptions()
    c.qos = qos
    if options is not None:
        if not isinstance(options, SubscribeOptions):
            raise _invalid(f"options must be SubscribeOptions, not {type(options).__name__}")
        _check_bool("no_local", options.no_local)
        _check_bool("retain_as_published", options.retain_as_published)
        if not _is_int(options.retain_handling):
            raise _invalid(f"retain_handling must be 0, 1 or 2, not {options.retain_handling!r}")
        c.no_local = options.no_local
        c.retain_as_published = options.retain_as_published
        # Out-of-range values are the library's to refuse (with its status and message).
        c.retain_handling = max(-1, min(int(options.retain_handling), 3))
    return c


def _user_properties_to_c(pairs: Optional[Sequence[tuple[str, str]]]) -> Any:
    if not pairs:
        return None
    array = (_native.Eq1UserProperty * len(pairs))()
    for i, pair in enumerate(pairs):
        if not isinstance(pair, tuple) or len(pair) != 2:
            raise _invalid(f"user property {i} must be a (name, value) tuple, not {pair!r}")
        array[i].name = _encode(pair[0], "user property name", Status.INVALID_ARGUMENT)
        array[i].value = _encode(pair[1], "user property value", Status.INVALID_ARGUMENT)
    return array


def _ack_from_c(ack: _native.Eq1AckProperties) -> tuple[Optional[str], list[tuple[str, str]]]:
    reason = ack.reason_string.decode("utf-8", "replace") if ack.reason_string else None
    pairs = [((ack.user_properties[i].name or b"").decode("utf-8", "replace"),
              (ack.user_properties[i].value or b"").decode("utf-8", "replace"))
             for i in range(ack.user_property_count)]
    return reason, pairs


def _properties_to_c(p: MessageProperties) -> tuple[_native.Eq1Properties, list[Any]]:
    """The C struct and the buffers it points into (keep them alive for the call)."""
    keep: list[Any] = []
    c = _native.Eq1Properties()
    if p.payload_is_utf8 is not None:
        c.has_payload_format = True
        c.payload_is_utf8 = bool(p.payload_is_utf8)
    if p.message_expiry is not None:
        if not _is_int(p.message_expiry) or not 0 <= p.message_expiry <= 0xFFFFFFFF:
            raise _invalid(f"message_expiry {p.message_expiry!r} is not 0..4294967295")
        c.has_message_expiry = True
        c.message_expiry = p.message_expiry
    if p.content_type is not None:
        c.content_type = _encode(p.content_type, "content_type", Status.INVALID_ARGUMENT)
    if p.response_topic is not None:
        c.response_topic = _encode(p.response_topic, "response_topic", Status.INVALID_TOPIC)
    if p.correlation_data is not None:
        data = ctypes.create_string_buffer(bytes(p.correlation_data), len(p.correlation_data))
        keep.append(data)
        c.correlation_data = ctypes.cast(data, ctypes.c_void_p)
        c.correlation_data_len = len(p.correlation_data)
    if p.user_properties:
        pairs = (_native.Eq1UserProperty * len(p.user_properties))()
        for i, (name, value) in enumerate(p.user_properties):
            pairs[i].name = _encode(name, "user property name", Status.INVALID_ARGUMENT)
            pairs[i].value = _encode(value, "user property value", Status.INVALID_ARGUMENT)
        keep.append(pairs)
        c.user_properties = pairs
        c.user_property_count = len(p.user_properties)
    return c, keep


def _properties_from_c(pointer: Any) -> Optional[MessageProperties]:
    if not pointer:
        return None
    c = pointer.contents

    def text(raw: Optional[bytes]) -> Optional[str]:
        return None if raw is None else raw.decode("utf-8", errors="replace")

    return MessageProperties(
        payload_is_utf8=bool(c.payload_is_utf8) if c.has_payload_format else None,
        message_expiry=int(c.message_expiry) if c.has_message_expiry else None,
        content_type=text(c.content_type),
        response_topic=text(c.response_topic),
        correlation_data=(ctypes.string_at(c.correlation_data, c.correlation_data_len)
                          if c.correlation_data else None),
        user_properties=[(text(c.user_properties[i].name) or "",
                          text(c.user_properties[i].value) or "")
                         for i in range(c.user_property_count)],
    )
#: ``on_delivery(token, error)``: error is None when the publish was delivered.
DeliveryCallback = Callable[[int, Optional[ProtocolError]], None]


@dataclass(frozen=True)
class DeliveryReport:
    """How one publish ended, with what an MQTT 5.0 broker said in its acknowledgement
    (``wait_report``, ``on_delivery_report``)."""

    token: int
    #: None when delivered, else the failure (PUBLISH_REFUSED for a failure reason code).
    error: Optional[ProtocolError]
    #: 0x00 success, 0x10 no matching subscribers, from 0x80 the failure (0x87 not
    #: authorized, 0x97 quota exceeded, ...); 0 when the broker gave none.
    reason_code: int = 0
    reason_string: Optional[str] = None
    user_properties: list[Tuple[str, str]] = field(default_factory=list)

    @property
    def delivered(self) -> bool:
        return self.error is None


#: ``on_delivery_report(report)``.
DeliveryReportCallback = Callable[[DeliveryReport], None]


def _text(raw: Optional[bytes]) -> Optional[str]:
    return None if raw is None else raw.decode("utf-8", errors="replace")


def _pairs(pointer: Any, count: int) -> list[Tuple[str, str]]:
    return [(_text(pointer[i].name) or "", _text(pointer[i].value) or "")
            for i in range(count)]


def _connack_from_c(pointer: Any) -> Optional[ConnAckInfo]:
    if not pointer:
        return None
    c = pointer.contents

    def opt(has: bool, value: Any) -> Any:
        return value if has else None

    return ConnAckInfo(
        session_present=bool(c.session_present),
        assigned_client_id=_text(c.assigned_client_id),
        server_keep_alive=opt(c.has_server_keep_alive, int(c.server_keep_alive)),
        response_information=_text(c.response_information),
        server_reference=_text(c.server_reference),
        reason_string=_text(c.reason_string),
        user_properties=_pairs(c.user_properties, c.user_property_count),
        session_expiry=opt(c.has_session_expiry, int(c.session_expiry)),
        receive_maximum=opt(c.has_receive_maximum, int(c.receive_maximum)),
        maximum_packet_size=opt(c.has_maximum_packet_size, int(c.maximum_packet_size)),
        maximum_qos=opt(c.has_maximum_qos, int(c.maximum_qos)),
        retain_available=opt(c.has_retain_available, bool(c.retain_available)),
        wildcard_available=opt(c.has_wildcard_available, bool(c.wildcard_available)),
        subscription_ids_available=opt(c.has_subscription_ids_available,
                                       bool(c.subscription_ids_available)),
        shared_available=opt(c.has_shared_available, bool(c.shared_available)),
        topic_alias_maximum=opt(c.has_topic_alias_maximum, int(c.topic_alias_maximum)),
    )

# Every id handed to the library as user_data (clients and subscriptions share the counter)
# -> the MQTTProtocol it belongs to. Weak: an unreferenced client is collected and freed.
_owners: dict[int, "weakref.ref[MQTTProtocol]"] = {}
_owners_lock = threading.Lock()
_next_id = iter(range(1, 2**62)).__next__
_live: "weakref.WeakSet[MQTTProtocol]" = weakref.WeakSet()


def _register_owner(owner: "MQTTProtocol") -> int:
    with _owners_lock:
        ident = _next_id()
        _owners[ident] = weakref.ref(owner)
        return ident


def _owner_of(user_data: Optional[int]) -> Optional["MQTTProtocol"]:
    ref = _owners.get(user_data or 0)
    return ref() if ref is not None else None


def _forget_owner(ident: int) -> None:
    with _owners_lock:
        _owners.pop(ident, None)


# The three callback trampolines, shared by every client and alive for the whole process: the
# library can never call a freed ctypes thunk.
def _dispatch_message(user_data: Optional[int], message: Optional[int]) -> None:
    # Once per received message: kept short (no helper calls, the message read in place).
    try:
        ref = _owners.get(user_data or 0)
        owner = ref() if ref is not None else None
        if owner is not None and message:
            owner._deliver_message(user_data or 0, message)
    except BaseException:  # noqa: BLE001 - nothing may escape into the dispatcher thread
        logger.exception("internal error while dispatching a message")


def _dispatch_connection(user_data: Optional[int], event: Any) -> None:
    try:
        owner = _owner_of(user_data)
        if owner is not None:
            owner._deliver_connection_event(event.contents)
    except BaseException:  # noqa: BLE001
        logger.exception("internal error while dispatching a connection event")


def _dispatch_delivery(user_data: Optional[int], token: int, status: int,
                         detail: Optional[bytes]) -> None:
    try:
        owner = _owner_of(user_data)
        if owner is not None:
            owner._deliver_delivery(token, status, detail)
    except BaseException:  # noqa: BLE001
        logger.exception("internal error while dispatching a delivery report")


def _dispatch_auth(user_data: Optional[int], challenge: Any, response: Any) -> None:
    try:
        owner = _owner_of(user_data)
        if owner is not None:
            owner._answer_auth(challenge.contents, response.contents)
    except BaseException:  # noqa: BLE001
        logger.exception("internal error while answering an authentication challenge")


def _dispatch_report(user_data: Optional[int], report: Any) -> None:
    try:
        owner = _owner_of(user_data)
        if owner is not None:
            owner._deliver_report(report.contents)
    except BaseException:  # noqa: BLE001
        logger.exception("internal error while dispatching a delivery report")


def _dispatch_sign(user_data: Optional[int], scheme: int, data: Optional[int],
                   data_len: int, signature: Optional[int], capacity: int,
                   signature_len: Any) -> bool:
    try:
        owner = _owner_of(user_data)
        signer = owner.config.tls_signer if owner is not None else None
        if signer is None or data is None or signature is None:
            return False
        result = signer(int(scheme), ctypes.string_at(data, data_len))
        if result is None:
            return False
        if not isinstance(result, (bytes, bytearray)) or not 0 < len(result) <= capacity:
            logger.error("tls_signer returned %r, not 1..%d bytes", type(result), capacity)
            return False
        ctypes.memmove(signature, bytes(result), len(result))
        signature_len[0] = len(result)
        return True
    except BaseException:  # noqa: BLE001
        logger.exception("tls_signer failed")
        return False


_message_trampoline = _native.MESSAGE_CB(_dispatch_message)
_sign_trampoline = _native.SIGN_CB(_dispatch_sign)
_auth_trampoline = _native.AUTH_CB(_dispatch_auth)
_report_trampoline = _native.DELIVERY_REPORT_CB(_dispatch_report)
_connection_trampoline = _native.CONNECTION_CB(_dispatch_connection)
_delivery_trampoline = _native.DELIVERY_CB(_dispatch_delivery)


def _close_all_at_exit() -> None:
    for client in list(_live):
        client.close()


_native.at_exit(_close_all_at_exit)


def _parse_metrics(text: str) -> dict[str, Any]:
    """Our own exposition (see MQTTProtocol.metrics) as a dict."""
    out: dict[str, Any] = {"disconnects_total": {}, "publish_latency_seconds": {}}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        series, _, raw = line.rpartition(" ")
        name, _, label_text = series.partition("{")
        labels = dict(part.split("=", 1) for part in label_text.rstrip("}").split(",")
                      if "=" in part)
        labels = {key: value.strip('"') for key, value in labels.items()}
        value = float(raw)
        name = name.removeprefix("eq1_mqtt_")
        if name == "disconnects_total":
            out["disconnects_total"][labels["reason"]] = int(value)
        elif name.startswith("publish_latency_"):
            qos = int(labels["qos"])
            entry = out["publish_latency_seconds"].setdefault(qos, {})
            if name == "publish_latency_seconds_count":
                entry["count"] = int(value)
            elif name == "publish_latency_seconds_sum":
                entry["sum"] = value
            elif name == "publish_latency_estimate_seconds":
                entry[labels["stat"]] = value
        else:
            out[name] = int(value) if value.is_integer() and not name.endswith("_seconds") \
                else value
    return out


def _encode(value: Any, what: str, status: int) -> bytes:
    """A str argument as NUL-free UTF-8 for the C API."""
    if not isinstance(value, str):
        raise _invalid(f"{what} must be a str, not {type(value).__name__}", status)
    if "\0" in value:
        raise _invalid(f"{what} {value!r} contains a NUL character", status)
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise _invalid(f"{what} {value!r} is not encodable as UTF-8: {e}",
                       Status.INVALID_UTF8) from None


# Published topics already encoded (str -> NUL-free UTF-8): most programs publish to a few
# topics over and over. Cleared when full; only _encode's successes go in.
_TOPIC_CACHE_SIZE = 1024
_topic_cache: dict[str, bytes] = {}


def _payload_bytes(message: Any) -> bytes:
    if message is None:
        return b""
    if isinstance(message, bytes):
        return message
    if isinstance(message, str):
        try:
            return message.encode("utf-8")
        except UnicodeEncodeError as e:
            raise _invalid(f"payload is not encodable as UTF-8: {e}",
                           Status.INVALID_UTF8) from None
    if isinstance(message, (bytearray, memoryview)):
        return bytes(message)
    if _is_number(message):
        return str(message).encode("ascii")
    raise _invalid(f"payload must be str or bytes, not {type(message).__name__}")


def _check_qos(qos: Any) -> int:
    if not _is_int(qos) or not 0 <= qos <= 2:
        raise _invalid(f"QoS must be 0, 1 or 2, not {qos!r}", Status.INVALID_QOS)
    return int(qos)


class MQTTProtocol(PubSubProtocol):
    """An MQTT client (the design's API). Thread-safe: every method may be called from any
    thread, including from inside its own callbacks.

    Use as a context manager to connect on entry and disconnect on exit, and call
    :meth:`close` (or let it be collected) to free the native client.
    """

    def __init__(self, config: Optional[MQTTConfig] = None) -> None:
        self._handle: Optional[int] = None
        self._closed = False
        self.config: MQTTConfig = config if config is not None else MQTTConfig()
        self.config.validate()
        self._lib = _native.load()
        # eq1_mqtt_client_publish keeps the GIL (see _native.GIL_HELD) unless it may write to
        # disk (persistence), where holding the GIL would stall every other thread.
        self._publish = (self._lib if self.config.persistence_dir is not None
                         else _native.gil_held()).eq1_mqtt_client_publish
        sync_native_log_level()
        # Guards _handle/_closed/_active; _calls_lock is its lock, taken directly on hot paths
        # (a `with` on the Condition itself costs two Python-level calls).
        self._calls_lock = threading.Lock()
        self._calls = threading.Condition(self._calls_lock)
        self._active = 0  # calls using the handle now: close() waits for them
        self._connect_lock = threading.Lock()  # one connect/disconnect at a time
        self._subscribe_lock = threading.RLock()  # keeps _subscriptions in step with the library
        # filter -> (subscription id, callback, granted QoS)
        # filter -> (id, callback, granted QoS, callback takes properties)
        self._subscriptions: dict[str, tuple[int, Callable[..., None], int, bool]] = {}
        # id -> (filter, callback, callback takes properties)
        self._callbacks: dict[int, tuple[str, Callable[..., None], bool]] = {}
        self._on_connection_change: Optional[ConnectionCallback] = None
        self._on_delivery: Optional[DeliveryCallback] = None
        self._on_auth: Optional[AuthCallback] = self.config.auth_callback
        self._on_delivery_report: Optional[DeliveryReportCallback] = None
        self._disconnected = threading.Event()
        self._dispatcher_ident: Optional[int] = None
        # The dispatcher thread whose Python thread state is kept between callbacks (from the
        # first message to the DISCONNECTED event, see _native.pin_thread_state).
        self._pinned_thread: Optional[int] = None
        self._id = _register_owner(self)
        try:
            self._handle = self._create_client()
        except BaseException:
            _forget_owner(self._id)
            raise
        _live.add(self)

    # ------------------------------------------------------------------ creation / lifetime

    def _create_client(self) -> int:
        lib, c = self._lib, self.config
        options = lib.eq1_mqtt_options_new()
        if not options:
            raise MemoryError("eq1_mqtt_options_new returned NULL")
        try:
            def setopt(name: str, *args: Any) -> None:
                _native.check(getattr(lib, f"eq1_mqtt_options_{name}")(options, *args),
                              name.replace("set_", "").replace("_", " "))

            primary = c.broker_address if _uri_scheme(c.broker_address) else \
                c.broker_uri(c.broker_address, c.port, bool(c.tls))
            if primary is not None:
                setopt("set_broker_uri", primary.encode())
            else:
                setopt("set_broker", c.broker_address.encode(), c.port)
            if c.client_id is not None:
                setopt("set_client_id", c.client_id.encode())
            if c.username is not None:
                setopt("set_credentials", c.username.encode(),
                       c.password.encode() if c.password is not None else None)
            setopt("set_keep_alive", c.keepalive)
            setopt("set_clean_session", bool(c.clean_session))
            if c.session_expiry is not None:
                setopt("set_session_expiry", int(c.session_expiry))
            setopt("set_protocol_version", c.protocol_version)
            if c.auth_method is not None:
                data = bytes(c.auth_data) if c.auth_data is not None else b""
                setopt("set_auth_method", c.auth_method.encode(), data or None, len(data))
            setopt("set_connect_timeout", _to_ms(c.timeout))
            setopt("set_inflight_window", c.inflight_window)
            if c.max_packet_size is not None:
                setopt("set_max_packet_size", c.max_packet_size)
            if c.tls:
                setopt("set_tls", os.fsencode(c.ca_certs) if c.ca_certs is not None else None)
                if c.certfile is not None and c.keyfile is not None:
                    setopt("set_tls_client_cert", os.fsencode(c.certfile),
                           os.fsencode(c.keyfile),
                           c.keyfile_password.encode() if c.keyfile_password else None)
                if c.ca_data is not None:
                    ca = bytes(c.ca_data)
                    setopt("set_tls_ca_data", ca, len(ca))
                if c.cert_data is not None and c.key_data is not None:
                    cert, key = bytes(c.cert_data), bytes(c.key_data)
                    setopt("set_tls_client_cert_data", cert, len(cert), key, len(key),
                           c.key_password.encode() if c.key_password is not None else None)
                if c.tls_signer_cert is not None:
                    chain = bytes(c.tls_signer_cert)
                    setopt("set_tls_client_signer", chain, len(chain), _sign_trampoline,
                           self._id)
                if c.tls_alpn:
                    ids = (ctypes.c_char_p * len(c.tls_alpn))(
                        *[p.encode() for p in c.tls_alpn])
                    setopt("set_tls_alpn", ids, len(c.tls_alpn))
                if c.tls_server_name is not None:
                    setopt("set_tls_server_name", c.tls_server_name.encode())
                if isinstance(c.tls_crl, (bytes, bytearray)):
                    crl = bytes(c.tls_crl)
                    setopt("set_tls_crl_data", crl, len(crl))
                elif c.tls_crl is not None:
                    setopt("set_tls_crl_file", os.fsencode(c.tls_crl))
                setopt("set_tls_verify_hostname", bool(c.tls_verify_hostname))
                setopt("set_tls_insecure", bool(c.tls_insecure))
            for host, port, tls in c.failover_brokers():
                uri = host if _uri_scheme(host) else c.broker_uri(host, port, tls)
                if uri is not None:
                    setopt("add_broker_uri", uri.encode())
                else:
                    setopt("add_broker", host.encode(), port, tls)
            for name, value in (c.ws_headers or {}).items():
                setopt("add_websocket_header", name.encode(), value.encode())
            if c.proxy is not None:
                setopt("set_proxy", c.proxy.encode())
            setopt("set_proxy_from_env", bool(c.proxy_from_env))
            if c.bind_address is not None:
                setopt("set_bind_address", c.bind_address.encode())
            if c.bind_interface is not None:
                setopt("set_bind_interface", c.bind_interface.encode())
            setopt("set_allow_plaintext_fallback", c.allow_plaintext_fallback)
            setopt("set_follow_redirects", c.follow_redirects)
            setopt("set_reconnect", bool(c.reconnect), _to_ms(c.reconnect_min_delay),
                   _to_ms(c.reconnect_max_delay))
            setopt("set_offline_queue", c.max_queued_messages, c.max_queued_bytes,
                   QUEUE_POLICIES[c.queue_policy], bool(c.queue_before_connect))
            setopt("set_topic_alias_auto", bool(c.topic_alias_auto))
            setopt("set_response_topic_prefix", c.response_topic_prefix.encode())
            setopt("set_max_pending_requests", c.max_pending_requests)
            if c.persistence_dir is not None and c.durability != "none":
                setopt("set_persistence", os.fsencode(c.persistence_dir),
                       DURABILITIES[c.durability])
                setopt("set_persistence_interval", _to_ms(c.persistence_interval))
                setopt("set_persistence_limit", c.persistence_max_bytes, bool(c.persist_qos0))
            client = ctypes.c_void_p()
            _native.check(lib.eq1_mqtt_client_new(options, self._id, _native.NO_FREE_CB,
                                                  ctypes.byref(client)), "create client")
        finally:
            lib.eq1_mqtt_options_free(options)
        assert client.value is not None
        status = lib.eq1_mqtt_client_set_connection_callback(client, _connection_trampoline)
        if status != Status.OK:
            lib.eq1_mqtt_client_free(client)
            raise error_from_status(status, "cannot install the connection callback")
        # Always installed: it answers with whatever on_auth is when a challenge comes.
        status = lib.eq1_mqtt_client_set_auth_callback(client, _auth_trampoline, self._id)
        if status != Status.OK:
            lib.eq1_mqtt_client_free(client)
            raise error_from_status(status, "cannot install the authentication callback")
        return client.value

    def _acquire(self) -> int:
        """The native handle, counted as in use until _release(); raises once closed."""
        with self._calls_lock:
            if self._closed or self._handle is None:
                raise error_from_status(Status.INVALID_STATE, "the MQTT client is closed")
            self._active += 1
            return self._handle

    def _release(self) -> None:
        with self._calls_lock:
            self._active -= 1
            if self._active == 0 and self._closed:  # only _free() (after close) waits
                self._calls.notify_all()

    def _on_dispatcher_thread(self) -> bool:
        return self._dispatcher_ident == threading.get_ident()

    def close(self) -> None:
        """Disconnects (if connected) and frees the native client; idempotent. Afterwards no
        callback runs and every other method raises ProtocolValidationError (closed), except
        disconnect() and close(), which do nothing."""
        with self._calls:
            if self._closed or self._handle is None:
                return
        try:
            self.disconnect()
        except ProtocolError as e:
            logger.warning("disconnect before close failed: %s", e)
        with self._calls:
            if self._closed:
                return
            self._closed = True
        _live.discard(self)
        if self._on_dispatcher_thread():
            # Freeing joins the dispatcher thread we are on: let another thread do it.
            threading.Thread(target=self._free, name="communicator-close", daemon=True).start()
        else:
            self._free()

    def _free(self) -> None:
        with self._calls:
            while self._active:
                self._calls.wait()
            handle, self._handle = self._handle, None
        if handle is None:
            return
        status = self._lib.eq1_mqtt_client_free(handle)
        if status == Status.CALLED_FROM_CALLBACK:  # collected inside one of our callbacks
            with self._calls:
                self._handle = handle
            threading.Thread(target=self._free, name="communicator-close", daemon=True).start()
            return
        _forget_owner(self._id)
        with self._subscribe_lock:
            for sub_id in self._callbacks:
                _forget_owner(sub_id)
            self._callbacks.clear()
            self._subscriptions.clear()

    def __del__(self) -> None:
        if getattr(self, "_handle", None) is None or getattr(self, "_closed", True):
            return
        try:
            self.close()
        except Exception:  # noqa: BLE001 - never raise from a finalizer
            pass

    def __enter__(self) -> "MQTTProtocol":
        self.connect()
        return self

    def __repr__(self) -> str:
        state = "closed" if self._closed else (
            "connected" if self.is_connected else "disconnected")
        return (f"<MQTTProtocol {self.config.broker_address}:{self.config.port} "
                f"{state}>")

    # ------------------------------------------------------------------ connection

    def connect(self) -> bool:
        """Connects and returns True once the broker accepted (CONNACK); returns True at once
        when already connected. Raises ProtocolConnectionError (refused, DNS, TLS, timeout...),
        ProtocolAuthenticationError (credentials, client certificate) or another ProtocolError,
        with the library's detail message."""
        sync_native_log_level()
        with self._connect_lock:
            handle = self._acquire()
            try:
                if self._lib.eq1_mqtt_client_is_connected(handle):
                    return True
                _native.check(self._lib.eq1_mqtt_client_connect(handle, 0))
            finally:
                self._release()
        return True

    def disconnect(self, timeout: Optional[float] = None, *,
                   reason_code: Optional[int] = None,
                   session_expiry: Optional[int] = None,
                   user_properties: Optional[Sequence[tuple[str, str]]] = None) -> None:
        """Waits up to ``timeout`` (default: operation_timeout) for unacknowledged QoS 1/2
        publishes, then disconnects cleanly (the broker discards the will). Stops automatic
        reconnection; connect() may be called again. Does nothing when not connected.

        MQTT 5.0: ``reason_code`` (0x04 asks the broker to publish the will; only codes a
        client may send), a new ``session_expiry`` interval in seconds (not non-zero when the
        session began with 0) and ``user_properties`` go with the DISCONNECT; a 3.1.1 client
        refuses them (MQTT5_REQUIRED).

        Returns after the callbacks of messages received before the disconnect have run
        (unless called from inside a callback)."""
        ms = self._timeout_ms(timeout)
        plain = reason_code is None and session_expiry is None and not user_properties
        if reason_code is not None and (not _is_int(reason_code)
                                        or not 0 <= int(reason_code) <= 255):
            raise _invalid(f"reason_code must be an int in 0..255, not {reason_code!r}")
        if session_expiry is not None and (not _is_int(session_expiry)
                                           or not 0 <= int(session_expiry) <= 0xFFFFFFFF):
            raise _invalid(f"session_expiry must be an int in 0..4294967295, "
                           f"not {session_expiry!r}")
        props = _user_properties_to_c(user_properties)
        count = len(user_properties) if user_properties else 0
        drain = not self._on_dispatcher_thread()
        with self._connect_lock:
            self._disconnected.clear()
            with self._calls:
                if self._closed or self._handle is None:
                    return  # closed: nothing to disconnect
                self._active += 1
                handle = self._handle
            try:
                if plain:
                    status = self._lib.eq1_mqtt_client_disconnect(handle, ms)
                else:
                    status = self._lib.eq1_mqtt_client_disconnect_with(
                        handle, int(reason_code or 0), session_expiry is not None,
                        int(session_expiry or 0), props, count, ms)
                if status == Status.NOT_CONNECTED:
                    return
                _native.check(status)
            finally:
                self._release()
        if drain:
            self._disconnected.wait(_DRAIN_TIMEOUT)

    @property
    def is_connected(self) -> bool:
        """True while connected to a broker."""
        with self._calls:
            if self._closed or self._handle is None:
                return False
            return bool(self._lib.eq1_mqtt_client_is_connected(self._handle))

    @property
    def client_id(self) -> str:
        """The client id (given, or generated by the library)."""
        handle = self._acquire()
        try:
            size = self._lib.eq1_mqtt_client_get_id(handle, None, 0)
            buf = ctypes.create_string_buffer(size + 1)
            self._lib.eq1_mqtt_client_get_id(handle, buf, size + 1)
        finally:
            self._release()
        return buf.value.decode("utf-8")

    def restored_messages(self) -> list[tuple[int, str, int]]:
        """What the store (persistence_dir) held when this client was created: publishes an
        earlier run accepted that had not completed, as (token, topic, qos) in the order they
        were accepted. Each keeps its original token; its outcome reaches on_delivery (and
        wait()) like any other. Empty without persistence."""
        handle = self._acquire()
        try:
            count = ctypes.c_size_t()
            _native.check(self._lib.eq1_mqtt_client_restored_count(handle, ctypes.byref(count)),
                          "restored count")
            restored = []
            for index in range(count.value):
                token = ctypes.c_uint64()
                qos = ctypes.c_int()
                size = ctypes.c_size_t()
                _native.check(self._lib.eq1_mqtt_client_restored_message(
                    handle, index, ctypes.byref(token), ctypes.byref(qos), None, 0,
                    ctypes.byref(size)), "restored message")
                buf = ctypes.create_string_buffer(size.value + 1)
                _native.check(self._lib.eq1_mqtt_client_restored_message(
                    handle, index, None, None, buf, size.value + 1, None), "restored message")
                restored.append((token.value, buf.value.decode("utf-8"), qos.value))
        finally:
            self._release()
        return restored

    @property
    def connack(self) -> Optional[ConnAckInfo]:
        """What the broker said in the CONNACK of the current connection, or of the last one
        when not connected now (assigned client id, server keep-alive, limits...); None
        before the first connect."""
        pointer = ctypes.POINTER(_native.Eq1ConnAckInfo)()
        handle = self._acquire()
        try:
            status = self._lib.eq1_mqtt_client_get_connack(handle, ctypes.byref(pointer))
            if status == Status.NOT_CONNECTED:
                return None
            _native.check(status)
            try:
                return _connack_from_c(pointer)
            finally:
                self._lib.eq1_mqtt_connack_info_free(pointer)
        finally:
            self._release()

    def set_will(self, topic: str, payload: Payload, qos: int = 1, retain: bool = False, *,
                 properties: Optional[MessageProperties] = None, delay: int = 0) -> None:
        """Sets the will (last will and testament) sent with the next connect; the broker
        publishes it if the connection ends without disconnect(). Only while not connected.
        MQTT 5.0: ``properties`` are the will message's, ``delay`` (seconds) the Will Delay
        Interval: the broker waits that long, and publishes nothing if the session resumes
        meanwhile (``session_expiry`` must outlive the delay)."""
        topic_b = _encode(topic, "will topic", Status.INVALID_TOPIC)
        data = _payload_bytes(payload)
        delay = self._int_arg(delay, "delay")
        if not 0 <= delay <= 2**32 - 1:
            raise _invalid(f"delay must be 0..{2**32 - 1} seconds, not {delay}")
        handle = self._acquire()
        try:
            if properties is None and delay == 0:
                _native.check(self._lib.eq1_mqtt_client_set_will(
                    handle, topic_b, data or None, len(data), self._int_arg(qos, "qos"),
                    bool(retain)))
            else:
                c_properties, _keep = (_properties_to_c(properties) if properties is not None
                                       else (_native.Eq1Properties(), []))
                _native.check(self._lib.eq1_mqtt_client_set_will_with_properties(
                    handle, topic_b, data or None, len(data), self._int_arg(qos, "qos"),
                    bool(retain), ctypes.byref(c_properties), delay))
        finally:
            self._release()

    def clear_will(self) -> None:
        """Removes the will set with set_will(); only while not connected."""
        handle = self._acquire()
        try:
            _native.check(self._lib.eq1_mqtt_client_clear_will(handle))
        finally:
            self._release()

    # ------------------------------------------------------------------ publish

    def publish(self, topic: str, message: Payload, qos: Optional[int] = None,
                retain: bool = False, *, wait: bool = False,
                timeout: Optional[float] = None,
                properties: Optional[MessageProperties] = None) -> bool:
        """Queues ``message`` (str is sent as UTF-8) for ``topic`` and returns True; it is sent
        at once when connected, else when reconnected (offline queue). ``qos`` defaults to
        config.default_qos. With ``wait=True``, blocks until the broker acknowledged it
        (QoS 1/2) or it was written (QoS 0), up to ``timeout`` (default: operation_timeout),
        and raises if it failed. ``properties`` (MQTT 5.0 only) are sent with the message."""
        token = self.publish_async(topic, message, qos, retain, properties=properties)
        if wait:
            self.wait(token, timeout)
        return True

    def publish_async(self, topic: str, message: Payload, qos: Optional[int] = None,
                      retain: bool = False, *,
                      properties: Optional[MessageProperties] = None) -> int:
        """Like publish() but returns the delivery token: pass it to wait(), or match it in
        on_delivery."""
        topic_b = _topic_cache.get(topic) if type(topic) is str else None
        if topic_b is None:
            topic_b = _encode(topic, "topic", Status.INVALID_TOPIC)
            if len(_topic_cache) >= _TOPIC_CACHE_SIZE:
                _topic_cache.clear()
            _topic_cache[topic] = topic_b
        data = message if type(message) is bytes else _payload_bytes(message)
        if type(qos) is not int:
            qos = self.config.default_qos if qos is None else self._int_arg(qos, "qos")
        token = ctypes.c_uint64(0)
        if properties is None:
            handle = self._acquire()
            try:
                status = self._publish(handle, topic_b, data or None, len(data), qos,
                                       bool(retain), ctypes.byref(token))
                if status:
                    _native.check(status)
            finally:
                self._release()
            return token.value
        c_properties, _keep = _properties_to_c(properties)
        handle = self._acquire()
        try:
            _native.check(self._lib.eq1_mqtt_client_publish_with_properties(
                handle, topic_b, data or None, len(data), qos, bool(retain),
                ctypes.byref(c_properties), ctypes.byref(token)))
        finally:
            self._release()
        return token.value

    def wait(self, token: int, timeout: Optional[float] = None) -> bool:
        """Blocks until the publish behind ``token`` completed and returns True; raises its
        failure (e.g. ProtocolConnectionError DISCONNECTED), or ProtocolConnectionError
        TIMEOUT after ``timeout`` seconds (default: operation_timeout)."""
        if not _is_int(token) or token <= 0:
            raise _invalid(f"{token!r} is not a delivery token")
        ms = self._timeout_ms(timeout)
        handle = self._acquire()
        try:
            _native.check(self._lib.eq1_mqtt_client_wait(handle, token, ms))
        finally:
            self._release()
        return True

    # ------------------------------------------------------------------ request/response

    def request(self, topic: str, payload: Payload, timeout: Optional[float] = None) -> bytes:
        """MQTT 5.0 request/response: publishes ``payload`` to ``topic`` (QoS 1) with a
        response topic and a fresh correlation data, and returns the payload of the reply
        (matched by its correlation data). Raises ProtocolConnectionError TIMEOUT when no
        reply came within ``timeout`` seconds (default: operation_timeout),
        ProtocolValidationError MQTT5_REQUIRED on an MQTT 3.1.1 client, TOO_MANY_REQUESTS
        when ``max_pending_requests`` are already waiting. Not from inside a callback."""
        topic_b = _encode(topic, "topic", Status.INVALID_TOPIC)
        data = _payload_bytes(payload)
        ms = self._timeout_ms(timeout) or 1
        response = ctypes.POINTER(_native.Eq1Response)()
        handle = self._acquire()
        try:
            _native.check(self._lib.eq1_mqtt_client_request(
                handle, topic_b, data or None, len(data), ms, ctypes.byref(response)))
        finally:
            self._release()
        try:
            reply = response.contents
            return ctypes.string_at(reply.payload, reply.payload_len) if reply.payload_len \
                else b""
        finally:
            self._lib.eq1_mqtt_response_free(response)

    def respond(self, request: Optional[MessageProperties], payload: Payload,
                qos: Optional[int] = None) -> int:
        """Answers a request received by a subscription made with ``with_properties=True``:
        publishes ``payload`` to the request's response topic with its correlation data and
        returns the delivery token. Raises ProtocolValidationError NO_RESPONSE_TOPIC when the
        message named no response topic (it is not a request)."""
        if self.config.protocol_version != _native.EQ1_MQTT_V5:
            raise _invalid("responding to a request needs MQTT 5.0; this client speaks 3.1.1",
                           Status.MQTT5_REQUIRED)
        if request is None or request.response_topic is None:
            raise _invalid("the message has no response topic: it is not a request, there is "
                           "nowhere to send the response", Status.NO_RESPONSE_TOPIC)
        return self.publish_async(request.response_topic, payload, qos, properties=MessageProperties(
            correlation_data=request.correlation_data))

    def wait_report(self, token: int, timeout: Optional[float] = None) -> DeliveryReport:
        """Like ``wait``, but returns how the publish ended instead of raising its failure:
        the error (None when delivered) with the MQTT 5.0 reason code and reason string of
        the broker's acknowledgement. Raises ProtocolConnectionError TIMEOUT after
        ``timeout`` seconds, ProtocolValidationError for a token never issued."""
        if not _is_int(token) or token <= 0:
            raise _invalid(f"{token!r} is not a delivery token")
        ms = self._timeout_ms(timeout)
        code = ctypes.c_uint8(0)
        reason = ctypes.create_string_buffer(1024)
        handle = self._acquire()
        try:
            status = self._lib.eq1_mqtt_client_wait_report(handle, token, ms, ctypes.byref(code),
                                                          reason, len(reason))
            detail = _native.last_error_message() if status != Status.OK else ""
        finally:
            self._release()
        if status in (Status.TIMEOUT, Status.INVALID_ARGUMENT, Status.NULL_ARGUMENT,
                      Status.INVALID_STATE, Status.INTERNAL):
            raise error_from_status(status, detail)
        error = None if status == Status.OK else error_from_status(status, detail)
        return DeliveryReport(token=token, error=error, reason_code=int(code.value),
                              reason_string=reason.value.decode("utf-8", errors="replace")
                              or None)

    # ------------------------------------------------------------------ subscribe

    def subscribe(self, topic: str, callback: MessageCallback, qos: Optional[int] = None,
                  timeout: Optional[float] = None, *, with_properties: bool = False,
                  options: Optional[SubscribeOptions] = None) -> bool:
        """Subscribes to the filter ``topic`` (wildcards + and # allowed) and returns True once
        the broker granted it; ``callback(topic, payload)`` then receives every matching
        message (payload as bytes) on the client's dispatcher thread. Subscribing the same
        filter again replaces its callback. Subscriptions are restored after a reconnect.
        ``options`` (MQTT 5.0): no-local, retain-as-published, retain handling. A shared
        subscription (``$share/<group>/<filter>``) receives the messages its group is given.
        Raises ProtocolValidationError (bad filter, refused by the broker),
        ProtocolConnectionError (not connected, timeout)."""
        if not callable(callback):
            raise _invalid(f"callback must be callable, not {type(callback).__name__}")
        filter_b = _encode(topic, "topic filter", Status.INVALID_FILTER)
        qos = self.config.default_qos if qos is None else _check_qos(qos)
        c_options = _options_to_c(qos, options) if options is not None else None
        ms = self._timeout_ms(timeout)
        with self._subscribe_lock:
            previous = self._subscriptions.get(topic)
            sub_id = previous[0] if previous else _register_owner(self)
            # Installed before the call: the first message may come before SUBACK is handled.
            self._callbacks[sub_id] = (topic, callback, with_properties)
            granted = ctypes.c_int(-1)
            handle = self._acquire()
            try:
                if c_options is None:
                    status = self._lib.eq1_mqtt_client_subscribe(
                        handle, filter_b, qos, _message_trampoline, sub_id, ms,
                        ctypes.byref(granted))
                else:
                    status = self._lib.eq1_mqtt_client_subscribe_with_options(
                        handle, filter_b, ctypes.byref(c_options), _message_trampoline, sub_id,
                        ms, ctypes.byref(granted))
                error = None if status == Status.OK else error_from_status(
                    status, _native.last_error_message() or _native.status_text(status))
            finally:
                self._release()
            if error is None:
                self._subscriptions[topic] = (sub_id, callback, granted.value, with_properties)
                return True
            if status == Status.TIMEOUT:
                # The library keeps the subscription (its SUBACK may still come): so do we.
                self._subscriptions[topic] = (sub_id, callback, qos, with_properties)
            elif previous is not None:
                self._callbacks[sub_id] = (topic, previous[1], previous[3])
            else:
                self._callbacks.pop(sub_id, None)
                _forget_owner(sub_id)
            raise error

    def subscribe_many(self, subscriptions: Sequence[SubscriptionSpec],
                       timeout: Optional[float] = None, *, with_properties: bool = False,
                       user_properties: Optional[Sequence[tuple[str, str]]] = None
                       ) -> SubscribeAck:
        """Subscribes several filters in one call, each ``(filter, callback[, qos[,
        SubscribeOptions]])``, and returns the broker's answer per filter (a refused filter is
        not an exception: its result says so and its callback is dropped). With MQTT 5.0 each
        subscription has its own subscription identifier, so a message matching two
        overlapping subscriptions reaches each callback once. ``user_properties`` (MQTT 5.0)
        go with the SUBSCRIBE. Raises like ``subscribe`` when the call itself fails."""
        specs = list(subscriptions)
        ms = self._timeout_ms(timeout)
        entries: list[tuple[str, MessageCallback, int, Optional[SubscribeOptions]]] = []
        for i, spec in enumerate(specs):
            if not isinstance(spec, tuple) or not 2 <= len(spec) <= 4:
                raise _invalid(f"subscription {i} must be (filter, callback[, qos[, options]]),"
                               f" not {spec!r}")
            topic, callback = spec[0], spec[1]
            if not callable(callback):
                raise _invalid(f"callback of subscription {i} must be callable")
            qos = self.config.default_qos if len(spec) < 3 or spec[2] is None \
                else _check_qos(spec[2])
            options = spec[3] if len(spec) == 4 else None
            entries.append((topic, callback, qos, options))
        array = (_native.Eq1Subscription * max(1, len(entries)))()
        for i, (topic, _, qos, options) in enumerate(entries):
            array[i].filter = _encode(topic, "topic filter", Status.INVALID_FILTER)
            array[i].options = _options_to_c(qos, options)
            array[i].callback = _message_trampoline
        props = _user_properties_to_c(user_properties)
        results = (_native.Eq1SubscribeResult * max(1, len(entries)))()
        ack = _native.Eq1AckProperties()
        with self._subscribe_lock:
            previous = {t: self._subscriptions.get(t) for t, _, _, _ in entries}
            ids: list[int] = []
            for i, (topic, callback, _, _) in enumerate(entries):
                prev = previous[topic]
                sub_id = prev[0] if prev else _register_owner(self)
                ids.append(sub_id)
                self._callbacks[sub_id] = (topic, callback, with_properties)
                array[i].user_data = sub_id
            handle = self._acquire()
            try:
                status = self._lib.eq1_mqtt_client_subscribe_many(
                    handle, array if entries else None, len(entries), props,
                    len(user_properties or ()), ms, results, ctypes.byref(ack))
                error = None if status == Status.OK else error_from_status(
                    status, _native.last_error_message() or _native.status_text(status))
                if error is None:
                    reason, pairs = _ack_from_c(ack)
                    self._lib.eq1_mqtt_ack_properties_clear(ctypes.byref(ack))
            finally:
                self._release()
            outcome: list[SubscribeResult] = []
            for i, (topic, callback, qos, _) in enumerate(entries):
                granted = error is None and results[i].status == Status.OK
                kept = granted or status == Status.TIMEOUT
                if kept:
                    granted_qos = results[i].granted_qos if granted else qos
                    self._subscriptions[topic] = (ids[i], callback, granted_qos, with_properties)
                else:
                    self._drop_subscription(topic, ids[i])
                if error is None:
                    outcome.append(SubscribeResult(
                        topic, results[i].reason_code,
                        results[i].granted_qos if granted else None, results[i].status,
                        results[i].subscription_id))
        if error is not None:
            raise error
        return SubscribeAck(outcome, reason, pairs)

    def _drop_subscription(self, topic: str, sub_id: int) -> None:
        """A subscribe that did not take: the library no longer routes to its callback."""
        self._subscriptions.pop(topic, None)
        self._callbacks.pop(sub_id, None)
        _forget_owner(sub_id)

    def unsubscribe_many(self, topics: Sequence[str], timeout: Optional[float] = None, *,
                         user_properties: Optional[Sequence[tuple[str, str]]] = None
                         ) -> UnsubscribeAck:
        """Unsubscribes several filters with one UNSUBSCRIBE and returns the broker's answer
        per filter (reason code 0x11: no subscription existed). Their callbacks are removed
        whatever the broker said."""
        names = list(topics)
        encoded = (ctypes.c_char_p * max(1, len(names)))()
        for i, topic in enumerate(names):
            encoded[i] = _encode(topic, "topic filter", Status.INVALID_FILTER)
        props = _user_properties_to_c(user_properties)
        results = (_native.Eq1UnsubscribeResult * max(1, len(names)))()
        ack = _native.Eq1AckProperties()
        ms = self._timeout_ms(timeout)
        with self._subscribe_lock:
            handle = self._acquire()
            try:
                status = self._lib.eq1_mqtt_client_unsubscribe_many_with_results(
                    handle, encoded if names else None, len(names), props,
                    len(user_properties or ()), ms, results, ctypes.byref(ack))
                error = None if status == Status.OK else error_from_status(
                    status, _native.last_error_message() or _native.status_text(status))
                if error is None:
                    reason, pairs = _ack_from_c(ack)
                    self._lib.eq1_mqtt_ack_properties_clear(ctypes.byref(ack))
            finally:
                self._release()
            if error is None or status == Status.TIMEOUT:
                for topic in names:
                    entry = self._subscriptions.pop(topic, None)
                    if entry is not None:
                        self._callbacks.pop(entry[0], None)
                        _forget_owner(entry[0])
        if error is not None:
            raise error
        return UnsubscribeAck([UnsubscribeResult(t, results[i].reason_code, results[i].status)
                               for i, t in enumerate(names)], reason, pairs)

    def unsubscribe(self, topic: str, timeout: Optional[float] = None) -> bool:
        """Removes the subscription to the filter ``topic`` (its callback is not called once
        this returns) and returns True when the broker confirmed it."""
        filter_b = _encode(topic, "topic filter", Status.INVALID_FILTER)
        ms = self._timeout_ms(timeout)
        with self._subscribe_lock:
            handle = self._acquire()
            try:
                status = self._lib.eq1_mqtt_client_unsubscribe(handle, filter_b, ms)
                error = None if status == Status.OK else error_from_status(
                    status, _native.last_error_message() or _native.status_text(status))
            finally:
                self._release()
            # Whatever the outcome, the library no longer routes messages for this filter.
            entry = self._subscriptions.pop(topic, None)
            if entry is not None:
                self._callbacks.pop(entry[0], None)
                _forget_owner(entry[0])
        if error is not None:
            raise error
        return True

    @property
    def subscriptions(self) -> dict[str, int]:
        """Current subscriptions: filter -> QoS granted by the broker."""
        with self._subscribe_lock:
            return {f: granted for f, (_, _, granted, _) in self._subscriptions.items()}

    # ------------------------------------------------------------------ enhanced authentication

    @property
    def on_auth(self) -> Optional[AuthCallback]:
        """``callback(challenge: AuthChallenge) -> bytes | bool`` answering each step of
        MQTT 5.0 enhanced authentication (``MQTTConfig.auth_method``); runs on the
        dispatcher thread. Without one a challenge fails the exchange (AUTH_FAILED)."""
        return self._on_auth

    @on_auth.setter
    def on_auth(self, callback: Optional[AuthCallback]) -> None:
        if callback is not None and not callable(callback):
            raise _invalid("on_auth must be callable or None")
        self._on_auth = callback

    def reauthenticate(self, data: Optional[bytes] = None,
                       timeout: Optional[float] = None) -> None:
        """Re-authenticates on the open connection (AUTH 0x19 with the configured method and
        ``data``), the exchange going through ``on_auth``; waits up to ``timeout`` (default:
        operation_timeout) for the broker's success. Publishing goes on meanwhile. Raises
        ProtocolAuthenticationError (AUTH_FAILED) when refused, ProtocolValidationError
        (AUTH_NOT_CONFIGURED) without an auth_method, ProtocolConnectionError when not
        connected or on timeout. Not from inside a callback."""
        if data is not None and not isinstance(data, (bytes, bytearray)):
            raise _invalid(f"data must be bytes, not {type(data).__name__}")
        raw = bytes(data) if data is not None else b""
        ms = self._timeout_ms(timeout) or 1
        handle = self._acquire()
        try:
            _native.check(self._lib.eq1_mqtt_client_reauthenticate(handle, raw or None,
                                                                   len(raw), ms))
        finally:
            self._release()

    def _answer_auth(self, challenge: Any, response: Any) -> None:
        self._dispatcher_ident = threading.get_ident()
        callback = self._on_auth
        if callback is None:
            self._auth_reason(response, "no on_auth callback is set (MQTTConfig.auth_callback)")
            return
        step = AuthChallenge(
            method=(challenge.method or b"").decode("utf-8", "replace"),
            reason_code=int(challenge.reason_code),
            data=ctypes.string_at(challenge.data, challenge.data_len)
            if challenge.data_len else b"",
            reauthenticating=bool(challenge.reauthenticating))
        try:
            answer = callback(step)
        except Exception as e:  # noqa: BLE001 - the exchange fails with the reason
            logger.warning("the authentication callback raised: %r", e)
            self._auth_reason(response, f"the authentication callback raised {e!r}")
            return
        if answer is True:
            response.action = _native.EQ1_MQTT_AUTH_SUCCESS
        elif isinstance(answer, (bytes, bytearray)):
            if len(answer) > response.data_capacity:
                self._auth_reason(response, f"the authentication callback returned "
                                            f"{len(answer)} bytes; at most 65,535 fit")
                return
            ctypes.memmove(response.data, bytes(answer), len(answer))
            response.data_len = len(answer)
            response.action = _native.EQ1_MQTT_AUTH_CONTINUE
        else:
            self._auth_reason(response, "the authentication callback refused "
                                        f"(returned {answer!r})")

    @staticmethod
    def _auth_reason(response: Any, text: str) -> None:
        response.action = _native.EQ1_MQTT_AUTH_FAILURE
        raw = text.encode("utf-8")[: max(0, response.reason_capacity - 1)] + b"\0"
        ctypes.memmove(response.reason, raw, len(raw))

    # ------------------------------------------------------------------ hooks and stats

    @property
    def on_connection_change(self) -> Optional[ConnectionCallback]:
        """``callback(event: ConnectionEvent)`` on connect, loss (with the reason) and
        disconnect; runs on the dispatcher thread."""
        return self._on_connection_change

    @on_connection_change.setter
    def on_connection_change(self, callback: Optional[ConnectionCallback]) -> None:
        if callback is not None and not callable(callback):
            raise _invalid("on_connection_change must be callable or None")
        self._on_connection_change = callback

    @property
    def on_delivery(self) -> Optional[DeliveryCallback]:
        """``callback(token, error)`` once per publish: error is None when delivered, else the
        ProtocolError (e.g. DISCONNECTED, DROPPED, PUBLISH_REFUSED); on the dispatcher thread."""
        return self._on_delivery

    @on_delivery.setter
    def on_delivery(self, callback: Optional[DeliveryCallback]) -> None:
        if callback is not None and not callable(callback):
            raise _invalid("on_delivery must be callable or None")
        handle = self._acquire()
        try:
            self._on_delivery = callback
            self._on_delivery_report = None
            _native.check(self._lib.eq1_mqtt_client_set_delivery_callback(
                handle, _delivery_trampoline if callback is not None else _native.NO_DELIVERY_CB))
        finally:
            self._release()

    @property
    def on_delivery_report(self) -> Optional[DeliveryReportCallback]:
        """``callback(DeliveryReport)`` once per publish, with the MQTT 5.0 reason code,
        reason string and user properties of the broker's acknowledgement; on the dispatcher
        thread. A client has one delivery callback: setting this replaces ``on_delivery``
        and the other way round."""
        return self._on_delivery_report

    @on_delivery_report.setter
    def on_delivery_report(self, callback: Optional[DeliveryReportCallback]) -> None:
        if callback is not None and not callable(callback):
            raise _invalid("on_delivery_report must be callable or None")
        handle = self._acquire()
        try:
            self._on_delivery_report = callback
            self._on_delivery = None
            _native.check(self._lib.eq1_mqtt_client_set_delivery_report_callback(
                handle, _report_trampoline if callback is not None
                else _native.NO_DELIVERY_REPORT_CB))
        finally:
            self._release()

    def stats(self) -> dict[str, int]:
        """The client's counters since creation: published, delivered, failed, received,
        queued, dropped, reconnects, bytes_in, bytes_out."""
        out = _native.Eq1Stats()
        handle = self._acquire()
        try:
            _native.check(self._lib.eq1_mqtt_client_get_stats(handle, ctypes.byref(out)))
        finally:
            self._release()
        return {name: int(getattr(out, name)) for name in _native.STATS_FIELDS}

    def metrics_text(self) -> str:
        """The client's metrics in the OpenMetrics / Prometheus text format (what
        ``eq1_mqtt_client_metrics_text`` renders): serve it on a /metrics endpoint as is."""
        handle = self._acquire()
        try:
            size = self._lib.eq1_mqtt_client_metrics_text(handle, None, 0)
            while True:
                # Uptimes and counters may grow between the two calls: leave room, retry.
                buf = ctypes.create_string_buffer(size + 256)
                size = self._lib.eq1_mqtt_client_metrics_text(handle, buf, len(buf))
                if size < len(buf):
                    break
        finally:
            self._release()
        return buf.value.decode("utf-8")

    def metrics(self) -> dict[str, Any]:
        """The metrics of ``metrics_text`` as a dict, names without the ``eq1_mqtt_`` prefix:
        counters (``published_total``, ``received_bytes_total``...), gauges (``connected``,
        ``connection_uptime_seconds``, ``outbox_messages``, ``outbox_bytes``,
        ``inbound_messages``, ``inbound_bytes``, ``pending_deliveries``),
        ``disconnects_total``: {reason: count}, and ``publish_latency_seconds``: {qos:
        {"count", "sum", "p50", "p99", "max"}} (p50/p99: upper bound of their histogram
        bucket; absent before the first completed publish at that QoS)."""
        return _parse_metrics(self.metrics_text())

    # ------------------------------------------------------------------ helpers

    def _timeout_ms(self, timeout: Optional[float]) -> int:
        if timeout is None:
            return _to_ms(self.config.operation_timeout)
        _check_seconds("timeout", timeout, allow_zero=True)
        return 0 if timeout == 0 else _to_ms(timeout)

    @staticmethod
    def _int_arg(value: Any, what: str) -> int:
        if not _is_int(value):
            raise _invalid(f"{what} must be an int, not {value!r}",
                           Status.INVALID_QOS if what == "qos" else Status.INVALID_ARGUMENT)
        return int(value)

    # ------------------------------------------------------------------ dispatcher side

    def _deliver_message(self, sub_id: int, address: int) -> None:
        self._dispatcher_ident = ident = threading.get_ident()
        if self._pinned_thread is None:
            _native.pin_thread_state()
            self._pinned_thread = ident
        entry = self._callbacks.get(sub_id)
        if entry is None:
            return
        filter_, callback, with_properties = entry
        # The eq1_mqtt_message at `address` and its buffers live until we return: copied out
        # with c_char arrays over them (a third of the cost of ctypes.string_at per message).
        message = _native.Eq1Message.from_address(address)
        raw_topic = (ctypes.c_char * message.topic_len).from_address(message.topic).raw
        payload_len = message.payload_len
        payload = (ctypes.c_char * payload_len).from_address(message.payload).raw \
            if payload_len else b""
        try:
            topic = raw_topic.decode("utf-8")
        except UnicodeDecodeError as e:
            error = ProtocolDecodeError(f"a message on {raw_topic!r} has a topic that is not "
                                        f"UTF-8 ({e}); dropped", Status.INVALID_UTF8)
            logger.error("%s", error)
            return
        try:
            if with_properties:
                callback(topic, payload, _properties_from_c(message.properties))
            else:
                callback(topic, payload)
        except BaseException:  # noqa: BLE001 - a user callback never stops the client
            logger.exception("the callback of the subscription to %r raised on a message on %r;"
                             " the client continues", filter_, topic)

    def _deliver_connection_event(self, event: Any) -> None:
        self._dispatcher_ident = threading.get_ident()
        state = ConnectionState(event.state)
        reason = None
        if event.reason != Status.OK:
            text = (event.reason_text or b"").decode("utf-8", errors="replace")
            reason = error_from_status(event.reason, text)
        info = ConnectionEvent(
            state=state, reason=reason, session_present=bool(event.session_present),
            broker_host=(event.broker_host or b"").decode("utf-8", errors="replace"),
            broker_port=int(event.broker_port),
            connack=_connack_from_c(event.connack),
            disconnect_reason_code=int(event.disconnect_reason_code),
            disconnect_reason_string=_text(event.disconnect_reason_string),
            server_reference=_text(event.server_reference))
        hook = self._on_connection_change
        try:
            if hook is not None:
                hook(info)
        except BaseException:  # noqa: BLE001
            logger.exception("on_connection_change raised; the client continues")
        finally:
            if state == ConnectionState.DISCONNECTED:
                if self._pinned_thread == threading.get_ident():
                    self._pinned_thread = None
                    _native.unpin_thread_state()
                self._disconnected.set()

    def _deliver_report(self, report: Any) -> None:
        self._dispatcher_ident = threading.get_ident()
        hook = self._on_delivery_report
        if hook is None:
            return
        error = None
        if report.status != Status.OK:
            error = error_from_status(report.status, _text(report.detail) or "")
        info = DeliveryReport(token=int(report.token), error=error,
                              reason_code=int(report.reason_code),
                              reason_string=_text(report.reason_string),
                              user_properties=_pairs(report.user_properties,
                                                     report.user_property_count))
        try:
            hook(info)
        except BaseException:  # noqa: BLE001
            logger.exception("on_delivery_report raised; the client continues")

    def _deliver_delivery(self, token: int, status: int, detail: Optional[bytes]) -> None:
        self._dispatcher_ident = threading.get_ident()
        hook = self._on_delivery
        if hook is None:
            return
        error = None
        if status != Status.OK:
            error = error_from_status(status, (detail or b"").decode("utf-8", errors="replace"))
        try:
            hook(token, error)
        except BaseException:  # noqa: BLE001
            logger.exception("on_delivery raised on token %d; the client continues", token)

//! `eq1_status`: the stable number every fallible C function returns, one per cause.

use crate::core::error::Error;
use std::ffi::{c_char, c_int};

/// Result of every fallible function. 0 is success; the numbers are stable across releases.
/// After a failure, `eq1_last_error_message()` on the same thread gives the detail.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum eq1_status {
    /// Success.
    Ok = 0,
    /// A required pointer argument was NULL.
    NullArgument = 1,
    /// A string argument is not valid UTF-8.
    InvalidUtf8 = 2,
    /// A topic name is empty, too long, contains a wildcard (`+`, `#`) or NUL.
    InvalidTopic = 3,
    /// A topic filter breaks the wildcard rules (e.g. `a/#/b`, `a+`, `#/a`).
    InvalidFilter = 4,
    /// A QoS outside 0..2.
    InvalidQos = 5,
    /// The PUBLISH would exceed the maximum packet size (ours or the broker's).
    PayloadTooLarge = 6,
    /// Any other argument out of its documented range.
    InvalidArgument = 7,
    /// The client id is invalid, or the broker rejected it.
    InvalidClientId = 8,
    /// The call does not fit the client's state (e.g. set_will while connected).
    InvalidState = 9,
    /// The call is not allowed from inside the client's own callback (e.g. freeing it).
    CalledFromCallback = 10,
    /// The offline queue (outbox) is full and the policy refuses new messages.
    QueueFull = 11,
    /// The client is not connected.
    NotConnected = 12,
    /// The broker's Maximum QoS (MQTT 5.0) is below the QoS asked for; nothing was sent.
    QosNotSupported = 13,
    /// The broker announced it lacks what the call needs (MQTT 5.0: retain, wildcard, shared
    /// subscriptions or subscription identifiers not available); nothing was sent.
    FeatureNotSupported = 14,
    /// The operation did not complete within its timeout.
    Timeout = 20,
    /// The broker's host refused the TCP connection (nothing listening).
    ConnectionRefused = 21,
    /// The broker's host name could not be resolved.
    DnsFailed = 22,
    /// Another network error (unreachable, reset...).
    NetworkError = 23,
    /// The connection was lost (closed by the broker, keep-alive timeout, broker DISCONNECT).
    ConnectionLost = 24,
    /// A TLS error not covered by a more specific status.
    TlsError = 30,
    /// The broker's certificate is not signed by a trusted CA ("unknown issuer").
    TlsUnknownIssuer = 31,
    /// The broker's certificate does not name the host connected to.
    TlsHostnameMismatch = 32,
    /// The broker's certificate has expired (or is not valid yet).
    TlsCertExpired = 33,
    /// The broker rejected our client certificate, or required one we did not send.
    TlsClientCertRejected = 34,
    /// A TLS file could not be read or parsed (CA, certificate, key, key password).
    TlsConfig = 35,
    /// The broker refused the connection: bad user name or password.
    BadCredentials = 40,
    /// The broker refused the connection: not authorized.
    NotAuthorized = 41,
    /// The broker refused the connection for another reason (protocol version, unavailable...).
    BrokerRefused = 42,
    /// The broker refused a subscription (SUBACK 0x80 or a v5 failure reason).
    SubscribeRefused = 43,
    /// The broker refused a publish (v5 PUBACK/PUBREC failure reason).
    PublishRefused = 44,
    /// The broker broke the protocol (malformed or unexpected packet); the connection closed.
    ProtocolError = 45,
    /// The message was still unacknowledged when the user disconnected.
    Disconnected = 46,
    /// The message was dropped from the full offline queue (drop-oldest policy).
    Dropped = 47,
    /// The broker does not support the protocol version asked for (e.g. MQTT 5.0 to a
    /// 3.1.1-only broker); see `eq1_mqtt_options_set_protocol_fallback`.
    UnsupportedProtocolVersion = 48,
    /// An internal error (a bug): please report it with the detail message.
    Internal = 99,
}

impl From<&Error> for eq1_status {
    fn from(error: &Error) -> eq1_status {
        use eq1_status as S;
        match error {
            Error::NullArgument(_) => S::NullArgument,
            Error::InvalidUtf8(_) => S::InvalidUtf8,
            Error::InvalidTopic(_) => S::InvalidTopic,
            Error::InvalidFilter(_) => S::InvalidFilter,
            Error::InvalidQos(_) => S::InvalidQos,
            Error::PayloadTooLarge(_) => S::PayloadTooLarge,
            Error::InvalidArgument(_) => S::InvalidArgument,
            Error::InvalidClientId(_) => S::InvalidClientId,
            Error::InvalidState(_) => S::InvalidState,
            Error::CalledFromCallback(_) => S::CalledFromCallback,
            Error::QueueFull(_) => S::QueueFull,
            Error::NotConnected(_) => S::NotConnected,
            Error::QosNotSupported(_) => S::QosNotSupported,
            Error::FeatureNotSupported(_) => S::FeatureNotSupported,
            Error::UnsupportedProtocolVersion(_) => S::UnsupportedProtocolVersion,
            Error::Timeout(_) => S::Timeout,
            Error::ConnectionRefused(_) => S::ConnectionRefused,
            Error::DnsFailed(_) => S::DnsFailed,
            Error::Network(_) => S::NetworkError,
            Error::ConnectionLost(_) => S::ConnectionLost,
            Error::Tls(_) => S::TlsError,
            Error::TlsUnknownIssuer(_) => S::TlsUnknownIssuer,
            Error::TlsHostnameMismatch(_) => S::TlsHostnameMismatch,
            Error::TlsCertExpired(_) => S::TlsCertExpired,
            Error::TlsClientCertRejected(_) => S::TlsClientCertRejected,
            Error::TlsConfig(_) => S::TlsConfig,
            Error::BadCredentials(_) => S::BadCredentials,
            Error::NotAuthorized(_) => S::NotAuthorized,
            Error::BrokerRefused(_) => S::BrokerRefused,
            Error::SubscribeRefused(_) => S::SubscribeRefused,
            Error::PublishRefused(_) => S::PublishRefused,
            Error::Protocol(_) => S::ProtocolError,
            Error::Disconnected(_) => S::Disconnected,
            Error::Dropped(_) => S::Dropped,
            Error::Internal(_) => S::Internal,
        }
    }
}

/// Every status with its name, in one place for `eq1_status_str`.
const NAMES: &[(eq1_status, &std::ffi::CStr)] = &[
    (eq1_status::Ok, c"EQ1_STATUS_OK: success"),
    (
        eq1_status::NullArgument,
        c"EQ1_STATUS_NULL_ARGUMENT: a required pointer was NULL",
    ),
    (
        eq1_status::InvalidUtf8,
        c"EQ1_STATUS_INVALID_UTF8: a string is not valid UTF-8",
    ),
    (
        eq1_status::InvalidTopic,
        c"EQ1_STATUS_INVALID_TOPIC: invalid topic name",
    ),
    (
        eq1_status::InvalidFilter,
        c"EQ1_STATUS_INVALID_FILTER: invalid topic filter",
    ),
    (
        eq1_status::InvalidQos,
        c"EQ1_STATUS_INVALID_QOS: QoS must be 0, 1 or 2",
    ),
    (
        eq1_status::PayloadTooLarge,
        c"EQ1_STATUS_PAYLOAD_TOO_LARGE: packet exceeds the maximum packet size",
    ),
    (
        eq1_status::InvalidArgument,
        c"EQ1_STATUS_INVALID_ARGUMENT: argument out of range",
    ),
    (
        eq1_status::InvalidClientId,
        c"EQ1_STATUS_INVALID_CLIENT_ID: invalid client identifier",
    ),
    (
        eq1_status::InvalidState,
        c"EQ1_STATUS_INVALID_STATE: not allowed in the client's current state",
    ),
    (
        eq1_status::CalledFromCallback,
        c"EQ1_STATUS_CALLED_FROM_CALLBACK: not allowed inside the client's own callback",
    ),
    (
        eq1_status::QueueFull,
        c"EQ1_STATUS_QUEUE_FULL: the offline queue is full",
    ),
    (
        eq1_status::NotConnected,
        c"EQ1_STATUS_NOT_CONNECTED: the client is not connected",
    ),
    (
        eq1_status::QosNotSupported,
        c"EQ1_STATUS_QOS_NOT_SUPPORTED: the broker does not support this QoS",
    ),
    (
        eq1_status::FeatureNotSupported,
        c"EQ1_STATUS_FEATURE_NOT_SUPPORTED: the broker does not support this feature",
    ),
    (eq1_status::Timeout, c"EQ1_STATUS_TIMEOUT: timed out"),
    (
        eq1_status::ConnectionRefused,
        c"EQ1_STATUS_CONNECTION_REFUSED: connection refused",
    ),
    (
        eq1_status::DnsFailed,
        c"EQ1_STATUS_DNS_FAILED: host name could not be resolved",
    ),
    (
        eq1_status::NetworkError,
        c"EQ1_STATUS_NETWORK_ERROR: network error",
    ),
    (
        eq1_status::ConnectionLost,
        c"EQ1_STATUS_CONNECTION_LOST: connection lost",
    ),
    (eq1_status::TlsError, c"EQ1_STATUS_TLS_ERROR: TLS error"),
    (
        eq1_status::TlsUnknownIssuer,
        c"EQ1_STATUS_TLS_UNKNOWN_ISSUER: certificate verify failed: unknown issuer",
    ),
    (
        eq1_status::TlsHostnameMismatch,
        c"EQ1_STATUS_TLS_HOSTNAME_MISMATCH: certificate verify failed: hostname mismatch",
    ),
    (
        eq1_status::TlsCertExpired,
        c"EQ1_STATUS_TLS_CERT_EXPIRED: certificate verify failed: certificate expired",
    ),
    (
        eq1_status::TlsClientCertRejected,
        c"EQ1_STATUS_TLS_CLIENT_CERT_REJECTED: broker rejected or required a client certificate",
    ),
    (
        eq1_status::TlsConfig,
        c"EQ1_STATUS_TLS_CONFIG: TLS file could not be read or parsed",
    ),
    (
        eq1_status::BadCredentials,
        c"EQ1_STATUS_BAD_CREDENTIALS: bad user name or password",
    ),
    (
        eq1_status::NotAuthorized,
        c"EQ1_STATUS_NOT_AUTHORIZED: not authorized",
    ),
    (
        eq1_status::BrokerRefused,
        c"EQ1_STATUS_BROKER_REFUSED: broker refused the connection",
    ),
    (
        eq1_status::SubscribeRefused,
        c"EQ1_STATUS_SUBSCRIBE_REFUSED: broker refused the subscription",
    ),
    (
        eq1_status::PublishRefused,
        c"EQ1_STATUS_PUBLISH_REFUSED: broker refused the publish",
    ),
    (
        eq1_status::ProtocolError,
        c"EQ1_STATUS_PROTOCOL_ERROR: MQTT protocol violation",
    ),
    (
        eq1_status::Disconnected,
        c"EQ1_STATUS_DISCONNECTED: client disconnected before completion",
    ),
    (
        eq1_status::Dropped,
        c"EQ1_STATUS_DROPPED: dropped from the full offline queue",
    ),
    (
        eq1_status::UnsupportedProtocolVersion,
        c"EQ1_STATUS_UNSUPPORTED_PROTOCOL_VERSION: the broker does not support this protocol version",
    ),
    (eq1_status::Internal, c"EQ1_STATUS_INTERNAL: internal error"),
];

/// A static, NUL-terminated description of `status` (any integer is accepted; unknown numbers
/// give "unknown status"). Never NULL; never free it.
#[no_mangle]
pub extern "C" fn eq1_status_str(status: c_int) -> *const c_char {
    NAMES
        .iter()
        .find(|(s, _)| *s as c_int == status)
        .map(|(_, name)| name.as_ptr())
        .unwrap_or(c"unknown status".as_ptr())
}
